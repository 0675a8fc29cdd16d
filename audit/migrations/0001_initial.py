from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    initial = True
    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("chain_seq", models.BigIntegerField(unique=True)),
                ("occurred_at", models.DateTimeField(db_index=True)),
                ("actor_username", models.CharField(blank=True, db_index=True, max_length=150)),
                ("action", models.CharField(db_index=True, max_length=64)),
                ("object_type", models.CharField(blank=True, db_index=True, max_length=64)),
                ("object_id", models.CharField(blank=True, db_index=True, max_length=64)),
                ("object_repr", models.CharField(blank=True, max_length=200)),
                ("before", models.JSONField(blank=True, null=True)),
                ("after", models.JSONField(blank=True, null=True)),
                ("request_id", models.CharField(blank=True, db_index=True, max_length=64)),
                ("ip", models.CharField(blank=True, max_length=64)),
                ("prev_hash", models.CharField(max_length=64)),
                ("hash", models.CharField(max_length=64, unique=True)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-chain_seq"],
                "indexes": [
                    models.Index(
                        fields=["object_type", "object_id"], name="audit_audit_object__0e78a5_idx"
                    )
                ],
            },
        ),
    ]
