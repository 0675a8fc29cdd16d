"""One UPDATE for many rows, where the ORM's bulk_update is too slow for a hot path.

QuerySet.bulk_update builds and resolves a CASE expression per field and row: 3.7 ms (2 ms of
CPU) for three orders of six fields, measured here, more than every other statement of an
execution report together. rows_update sends the same change as one
UPDATE ... FROM unnest(<one array per column>): 0.3 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from django.db import connections, router
from django.db.models import JSONField, Model

# Per kind of field, the Python types whose value get_db_prep_save hands to the driver
# unchanged (on PostgreSQL); None too, for every field here.
_AS_IS: dict[str, frozenset[type]] = {
    "DecimalField": frozenset({Decimal}),
    "IntegerField": frozenset({int}),
    "BigIntegerField": frozenset({int}),
    "PositiveIntegerField": frozenset({int}),
    "PositiveBigIntegerField": frozenset({int}),
    "SmallIntegerField": frozenset({int}),
    "PositiveSmallIntegerField": frozenset({int}),
    "AutoField": frozenset({int}),
    "BigAutoField": frozenset({int}),
    "CharField": frozenset({str}),
    "TextField": frozenset({str}),
    "BooleanField": frozenset({bool}),
    "DateField": frozenset({date}),
    "DateTimeField": frozenset({datetime}),
}


def as_is_types(field) -> frozenset[type]:
    """The value types `field` takes unprepared (see _AS_IS); empty: prepare every value."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return frozenset()
    kind = field.get_internal_type()
    if kind == "ForeignKey":
        kind = field.target_field.get_internal_type()
    return _AS_IS.get(kind, frozenset())


def prepared(field, types: frozenset[type], value, connection):
    """What get_db_prep_save(value) gives, without its cost when the value needs nothing."""
    kind = type(value)
    if value is None or (
        kind in types
        and (kind is not Decimal or value.is_finite())  # Django refuses NaN and infinities
        and (kind is not datetime or value.tzinfo is not None)  # a naive one is made aware
    ):
        return value
    return field.get_db_prep_save(value, connection)


def rows_update(objs: Sequence[Model], fields: Sequence[str]) -> int:
    """Write `fields` of model instances already changed in memory, in one statement.

    Values go through each field's get_db_prep_save, as save() does; auto_now fields are not
    set for you (set them on the instances). Like bulk_update it writes what the instances
    hold, so it is for rows the caller has locked. Returns the number of rows updated.

    Each column travels as one array (UPDATE ... FROM unnest(...)): a VALUES list of a
    thousand rows costs the driver and the server a literal per value to quote, parse and
    plan, three to four times the CPU of the same values as arrays.
    """
    if not objs:
        return 0
    model = type(objs[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    pk = meta.pk
    targets = [meta.get_field(name) for name in fields]
    if any(isinstance(f, JSONField) for f in targets):
        return _rows_update_values(objs, pk, targets, connection)
    # get_db_prep_save only for values the driver cannot take as they are (it costs
    # microseconds a value: a noticeable share of a wide block's booking).
    columns: list[list] = [[pk.get_db_prep_save(obj.pk, connection) for obj in objs]]
    for field in targets:
        attname, types = field.attname, as_is_types(field)
        columns.append([prepared(field, types, getattr(obj, attname), connection) for obj in objs])
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in [pk, *targets])
    names = ", ".join(quote(c) for c in ["__pk", *(f.column for f in targets)])
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in targets)
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET {assignments} "
        f"FROM unnest({arrays}) AS v({names}) "
        f"WHERE t.{quote(pk.column)} = v.{quote('__pk')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, columns)
        return cursor.rowcount


def _rows_update_values(objs, pk, targets, connection) -> int:
    """rows_update for JSON columns (an array of JSON documents would need its own
    quoting): one row of literals per object."""
    meta = pk.model._meta
    quote = connection.ops.quote_name
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
