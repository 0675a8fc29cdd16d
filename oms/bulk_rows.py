"""One UPDATE for many rows, where the ORM's bulk_update is too slow for a hot path.

QuerySet.bulk_update builds and resolves a CASE expression per field and row: 3.7 ms (2 ms of
CPU) for three orders of six fields, measured here, more than every other statement of an
execution report together. rows_update sends the same change as one
UPDATE ... FROM unnest(<one array per column>): 0.3 ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

from django.db import connections, router
from django.db.models import BooleanField, JSONField, Model
from django.db.models.expressions import RawSQL

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


def any_of(model: type[Model], field: str, values: Iterable) -> RawSQL:
    """A filter `field IN values` with the values as one array parameter (`= ANY(%s)`): what
    QuerySet.filter(field__in=values) selects, without Django preparing, and the driver
    quoting, a placeholder per value (tens of milliseconds for the thousands of rows a wide
    block locks). Use it on a query of `model` without joins to the same table."""
    meta = model._meta
    target = meta.get_field(field)
    connection = connections[router.db_for_read(model)]
    quote = connection.ops.quote_name
    db_type = target.db_type(connection)  # a foreign key's is its target's (bigint)
    return RawSQL(
        f"{quote(meta.db_table)}.{quote(target.column)} = ANY(%s::{db_type}[])",
        (list(values),),
        output_field=BooleanField(),
    )


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
    targets = [meta.get_field(name) for name in fields]
    if any(isinstance(f, JSONField) for f in targets):
        connection = connections[router.db_for_write(model)]
        return _rows_update_values(objs, meta.pk, targets, connection)
    names = [f.attname for f in targets]
    return values_update(
        model, fields, [(obj.pk, *(getattr(obj, n) for n in names)) for obj in objs]
    )


def values_update(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence]) -> int:
    """rows_update for rows given as values: each row is (primary key, *values of `fields`),
    for a caller that keeps locked rows as plain values rather than model instances."""
    if not rows:
        return 0
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    pk = meta.pk
    targets = [meta.get_field(name) for name in fields]
    # get_db_prep_save only for values the driver cannot take as they are (it costs
    # microseconds a value: a noticeable share of a wide block's booking).
    columns: list[list] = [[pk.get_db_prep_save(row[0], connection) for row in rows]]
    for i, field in enumerate(targets, start=1):
        types = as_is_types(field)
        columns.append([prepared(field, types, row[i], connection) for row in rows])
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


def rows_insert(
    model: type[Model], fields: Sequence[str], rows: Sequence[Sequence], *, copy_from: int = 2
) -> list:
    """Insert rows given as values, in order, and return their primary keys in that order:
    the rows audit.services.bulk_insert writes from model instances, for a hot path that has
    the values at hand (a model instance costs tens of microseconds to build, and as much
    again to read back field by field). `fields` names every concrete field but the key
    (attnames: "account_id"), and each row holds their values in that order. Defaults are
    not filled in and no signal is sent, as with bulk_insert.

    From `copy_from` rows on it writes by COPY (the keys first, from the table's sequence, then
    the data: two round trips), below with one INSERT ... RETURNING. The default is
    bulk_insert's (COPY from two rows: a statement count that does not grow with the rows); a
    caller whose row count follows something else (a block's width) may set it higher, to
    spare narrow cases a round trip."""
    if not rows:
        return []
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    pk = meta.pk
    targets = [meta.get_field(name) for name in fields]
    expected = {f.attname for f in meta.concrete_fields if not f.primary_key and not f.generated}
    if {f.attname for f in targets} != expected or len(targets) != len(expected):
        raise ValueError(f"rows_insert({meta.label}) needs every field but the key: {expected}")
    kinds = [as_is_types(f) for f in targets]
    columns = ", ".join(quote(f.column) for f in targets)
    with connection.cursor() as cursor:
        if len(rows) < copy_from:
            values: list = []
            for row in rows:
                values.extend(
                    prepared(f, t, v, connection)
                    for f, t, v in zip(targets, kinds, row, strict=True)
                )
            one = "(" + ", ".join(["%s"] * len(targets)) + ")"
            cursor.execute(
                f"INSERT INTO {quote(meta.db_table)} ({columns}) "
                f"VALUES {', '.join([one] * len(rows))} RETURNING {quote(pk.column)}",
                values,
            )
            return [r[0] for r in cursor.fetchall()]
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, pk.column, len(rows)],
        )
        keys = sorted(r[0] for r in cursor.fetchall())
        with cursor.copy(
            f"COPY {quote(meta.db_table)} ({quote(pk.column)}, {columns}) FROM STDIN"
        ) as copy:
            for key, row in zip(keys, rows, strict=True):
                copy.write_row(
                    [
                        key,
                        *(
                            prepared(f, t, v, connection)
                            for f, t, v in zip(targets, kinds, row, strict=True)
                        ),
                    ]
                )
        return keys


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
