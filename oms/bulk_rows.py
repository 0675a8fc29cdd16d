"""One UPDATE for many rows, where the ORM's bulk_update is too slow for a hot path.

QuerySet.bulk_update builds and resolves a CASE expression per field and row: 3.7 ms (2 ms of
CPU) for three orders of six fields, measured here, more than every other statement of an
execution report together. rows_update sends the same change as one
UPDATE ... FROM (VALUES ...): 0.3 ms.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, router
from django.db.models import Model


def rows_update(objs: Sequence[Model], fields: Sequence[str]) -> int:
    """Write `fields` of model instances already changed in memory, in one statement.

    Values go through each field's get_db_prep_save, as save() does; auto_now fields are not
    set for you (set them on the instances). Like bulk_update it writes what the instances
    hold, so it is for rows the caller has locked. Returns the number of rows updated.
    """
    if not objs:
        return 0
    model = type(objs[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    pk = meta.pk
    targets = [meta.get_field(name) for name in fields]
    row = "(" + ", ".join(["%s"] * (len(targets) + 1)) + ")"
    params: list = []
    for obj in objs:
        params.append(pk.get_db_prep_save(obj.pk, connection))
        params.extend(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in targets)
    columns = ", ".join(quote(c) for c in ["__pk", *(f.column for f in targets)])
    # VALUES guesses each column's type from its literals: cast to the field's own type.
    assignments = ", ".join(
        f"{quote(f.column)} = v.{quote(f.column)}::{f.db_type(connection)}" for f in targets
    )
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET {assignments} "
        f"FROM (VALUES {', '.join([row] * len(objs))}) AS v({columns}) "
        f"WHERE t.{quote(pk.column)} = v.{quote('__pk')}::{pk.db_type(connection)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
