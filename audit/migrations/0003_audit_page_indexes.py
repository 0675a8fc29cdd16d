from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built concurrently: the trail keeps being appended to while a large table is indexed.
    # The single-column indexes they replace go afterwards (each also had a LIKE twin).
    atomic = False

    dependencies = [("audit", "0002_append_only_trigger")]

    operations = [
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(fields=["occurred_at", "chain_seq"], name="audit_occurred_seq_idx"),
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                fields=["actor_username", "occurred_at", "chain_seq"],
                name="audit_user_occurred_idx",
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="occurred_at",
            field=models.DateTimeField(),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="actor_username",
            field=models.CharField(blank=True, max_length=150),
        ),
    ]
