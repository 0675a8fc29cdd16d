from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("fixgateway", "0005_fix_messages_ack_timeout"),
    ]

    operations = [
        migrations.AddField(
            model_name="broker",
            name="status_requests",
            field=models.CharField(
                choices=[
                    ("unknown", "Not known yet"),
                    ("answered", "Answers OrderStatusRequest"),
                    ("refused", "Refuses OrderStatusRequest"),
                ],
                default="unknown",
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="broker",
            name="status_requests_learned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="fixorder",
            name="unconfirmed_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="fixorder",
            name="unconfirmed_reason",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="fixorder",
            name="carried_cum_qty",
            field=models.DecimalField(decimal_places=8, default=0, max_digits=28),
        ),
        migrations.AddField(
            model_name="sessionstate",
            name="owner_heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="sessionstate",
            name="sequence_problem",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.AddField(
            model_name="sessionstate",
            name="sequence_problem_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="sessionstate",
            name="sequence_reset_requested_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="sessionstate",
            name="sequence_reset_next_sender",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="sessionstate",
            name="sequence_reset_next_target",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
