from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built concurrently: orders keep being written while a large table is indexed.
    atomic = False

    dependencies = [("orders", "0003_order_filled_value")]

    operations = [
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(fields=["updated_at"], name="order_updated_at_idx"),
        ),
    ]
