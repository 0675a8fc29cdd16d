"""Writing the audit trail. Call audit_record inside the caller's transaction. The chain lock
it takes is held until that transaction ends, so it must be the transaction's last lock: use
cases run in oms.db.in_transaction, whose audit_chain_last links their events at the end."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, connections, models, router, transaction
from django.utils import timezone

from oms.bulk_rows import rows_insert

from . import context
from .models import AuditEvent

GENESIS_HASH = "0" * 64
# Arbitrary constant key for pg_advisory_xact_lock: one writer extends the chain at a time.
CHAIN_LOCK_KEY = 7_300_417_001
M = TypeVar("M", bound=models.Model)


def _normalise(value: Any) -> Any:
    """What jsonb will give back: Decimals, dates and UUIDs become strings."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def event_digest(
    *,
    chain_seq: int,
    occurred_at: datetime,
    actor_id: int | None,
    actor_username: str,
    action: str,
    object_type: str,
    object_id: str,
    object_repr: str,
    before: Any,
    after: Any,
    request_id: str,
    ip: str,
    prev_hash: str,
) -> str:
    payload = {
        "chain_seq": chain_seq,
        "occurred_at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": actor_id,
        "actor_username": actor_username,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "object_repr": object_repr,
        "before": before,
        "after": after,
        "request_id": request_id,
        "ip": ip,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def digest_of(event: AuditEvent) -> str:
    return event_digest(
        chain_seq=event.chain_seq,
        occurred_at=event.occurred_at,
        actor_id=event.actor_id,
        actor_username=event.actor_username,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        object_repr=event.object_repr,
        before=event.before,
        after=event.after,
        request_id=event.request_id,
        ip=event.ip,
        prev_hash=event.prev_hash,
    )


def _event_fields(
    *,
    actor: Any = None,
    action: str,
    obj: Any = None,
    object_type: str = "",
    object_id: str | int = "",
    object_repr: str = "",
    before: Any = None,
    after: Any = None,
    occurred_at: datetime | None = None,
    actor_username: str = "",
) -> dict[str, Any]:
    """An event's stored fields, all but its place in the chain (chain_seq, prev_hash, hash)."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
        object_repr = object_repr or str(obj)
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    if actor is not None and getattr(actor, "is_authenticated", False):
        actor_username = actor_username or actor.get_username()
    ctx = context.current()
    return {
        "occurred_at": occurred_at or timezone.now(),
        "actor_id": actor_id,
        "actor_username": actor_username[:150],
        "action": action[:64],
        "object_type": str(object_type)[:64],
        "object_id": str(object_id)[:64],
        "object_repr": str(object_repr)[:200],
        "before": _normalise(before),
        "after": _normalise(after),
        "request_id": ctx.request_id,
        "ip": ctx.ip,
    }


# Values psycopg writes into COPY exactly as Django's get_db_prep_save would pass them.
_COPY_AS_IS = frozenset({str, int, bool, datetime, date, type(None)})


def bulk_insert(objs: Sequence[M]) -> list[M]:
    """Insert new model instances with COPY, in the given order, and set their primary keys:
    what Model.objects.bulk_create(objs) does, for the large batches of a basket or program.

    bulk_create costs about half a millisecond a row here (Django compiles every value, and
    psycopg escapes each JSON document of its UNNEST arrays through a Python regex): 10,000
    compliance results, order events and audit rows took 20 s. COPY sends the same rows as
    one data stream, formatted in C: under a tenth of that. The keys come from the table's
    own sequence, taken in one query, in order (so ordering by id keeps the list's order).
    Database constraints and triggers apply as they do to an INSERT."""
    objs = list(objs)
    if len(objs) < 2:  # one INSERT ... RETURNING is the cheaper round trip for a single row
        return type(objs[0]).objects.bulk_create(objs) if objs else []
    model = type(objs[0])
    meta = model._meta
    conn = connections[router.db_for_write(model)]
    quote = conn.ops.quote_name
    fields = [f for f in meta.concrete_fields if not f.primary_key and not f.generated]
    pk = meta.pk
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, pk.column, len(objs)],
        )
        keys = sorted(row[0] for row in cursor.fetchall())
        columns = ", ".join(quote(c) for c in [pk.column, *(f.column for f in fields)])
        # pre_save only where it does something (auto_now dates); get_db_prep_save only for
        # values COPY cannot take as they are (JSON documents, anything but plain types).
        auto = {
            f.attname
            for f in fields
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
        }
        # A DecimalField takes a finite Decimal as it is too (get_db_prep_save returns it
        # unchanged; the column's type rounds it, as it does for an INSERT).
        plain = [not isinstance(f, models.JSONField | models.DecimalField) for f in fields]
        decimal = [isinstance(f, models.DecimalField) for f in fields]
        with cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for key, obj in zip(keys, objs, strict=True):
                obj._prepare_related_fields_for_save(operation_name="bulk_insert")
                setattr(obj, pk.attname, key)
                row = [key]
                for field, is_plain, is_decimal in zip(fields, plain, decimal, strict=True):
                    if field.attname in auto:
                        value = field.pre_save(obj, add=True)
                    else:
                        value = getattr(obj, field.attname)
                    if is_decimal and type(value) is Decimal and value.is_finite():
                        pass
                    elif not (is_plain and type(value) in _COPY_AS_IS):
                        value = field.get_db_prep_save(value, conn)
                    row.append(value)
                copy.write_row(row)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = conn.alias
    return objs


def _chain_head() -> tuple[int, str]:
    """Lock the chain and return (next chain_seq, hash of the last event)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
    last = AuditEvent.objects.order_by("-chain_seq").values_list("chain_seq", "hash").first()
    return (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)


def _link(prepared: list[dict[str, Any]]) -> tuple[list[int], list[tuple]]:
    """Take the chain lock, link the events after its head in the given order and insert
    them (one INSERT, or COPY): their keys and stored values."""
    seq, prev_hash = _chain_head()
    rows = []
    for fields in prepared:
        linked = {"chain_seq": seq, **fields, "prev_hash": prev_hash}
        linked["hash"] = event_digest(**linked)
        rows.append(tuple(linked[name] for name in _EVENT_FIELDS))
        seq, prev_hash = seq + 1, linked["hash"]
    # As values, not model instances: an event of each of a wide block's thousand orders.
    return rows_insert(AuditEvent, _EVENT_FIELDS, rows), rows


class _Alive:
    """Registered with transaction.on_commit for a batch of held events. Django drops it from
    the connection's commit callbacks when the savepoint it was registered in rolls back, which
    is how the scope knows those events were undone with it. Calling it does nothing."""

    __slots__ = ()

    def __call__(self) -> None:
        return None


class _Held:
    """Events recorded inside audit_chain_last, waiting for the scope's end to be linked."""

    def __init__(self) -> None:
        self.batches: list[tuple[_Alive, list[dict[str, Any]], list[AuditEvent]]] = []

    def hold(self, prepared: list[dict[str, Any]], events: list[AuditEvent]) -> None:
        alive = _Alive()
        transaction.on_commit(alive, using=router.db_for_write(AuditEvent))
        self.batches.append((alive, prepared, events))

    def link(self, conn) -> None:
        alive = {id(entry[1]) for entry in conn.run_on_commit}
        kept = [(p, e) for a, p, e in self.batches if id(a) in alive]
        self.batches = []
        prepared = [fields for p, _ in kept for fields in p]
        if not prepared:
            return
        keys, rows = _link(prepared)
        stored = iter(zip(keys, rows, strict=True))
        for batch, events in kept:
            fresh = not events  # audit_record_many's list: filled here
            for _ in batch:
                key, row = next(stored)
                if fresh:
                    events.append(AuditEvent.from_db(conn.alias, _EVENT_COLUMNS, (key, *row)))
                    continue
                event = events[0]
                for name, value in zip(_EVENT_COLUMNS, (key, *row), strict=True):
                    setattr(event, name, value)
                event._state.adding, event._state.db = False, conn.alias


@contextmanager
def audit_chain_last() -> Iterator[None]:
    """Inside a transaction: hold the events audit_record and audit_record_many record until
    the block ends, then link them to the chain, in the order recorded, with one lock and one
    INSERT. The chain lock is then the last lock the transaction takes (after every row lock),
    so it cannot close a cycle with them: the lock order is rows first, the chain last.

    Events recorded in a savepoint that rolls back are dropped with it. The events returned
    meanwhile get their chain position, hash and key when the block ends. Nested scopes hold
    for the outermost. oms.db.in_transaction opens one for every use case it runs."""
    conn = connections[router.db_for_write(AuditEvent)]
    if getattr(conn, "audit_held", None) is not None:
        yield
        return
    if not conn.in_atomic_block:
        raise transaction.TransactionManagementError("audit_chain_last needs a transaction.")
    held = conn.audit_held = _Held()
    try:
        yield
    finally:
        conn.audit_held = None
    held.link(conn)


def _append(prepared: list[dict[str, Any]], *, single: bool) -> list[AuditEvent]:
    held: _Held | None = getattr(connections[router.db_for_write(AuditEvent)], "audit_held", None)
    if held is not None:
        events = [AuditEvent(**prepared[0])] if single else []
        held.hold(prepared, events)
        return events
    # No savepoint: a failed insert aborts the caller's transaction anyway, and a savepoint
    # costs two round trips on every audited change.
    with transaction.atomic(savepoint=False):
        keys, rows = _link(prepared)
    alias = router.db_for_write(AuditEvent)
    return [
        AuditEvent.from_db(alias, _EVENT_COLUMNS, (key, *row))
        for key, row in zip(keys, rows, strict=True)
    ]


def audit_record(
    *,
    actor: Any = None,
    action: str,
    obj: Any = None,
    object_type: str = "",
    object_id: str | int = "",
    object_repr: str = "",
    before: Any = None,
    after: Any = None,
    occurred_at: datetime | None = None,
    actor_username: str = "",
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction (or its own if none); inside
    audit_chain_last, when that scope ends."""
    fields = _event_fields(
        actor=actor,
        action=action,
        obj=obj,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        before=before,
        after=after,
        occurred_at=occurred_at,
        actor_username=actor_username,
    )
    return _append([fields], single=True)[0]


def audit_record_many(events: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append several events to the chain in one go, in the given order: the chain lock is
    taken and its head read once, each event's hash links to the one before it exactly as
    audit_record would have made it, and the rows go in with one INSERT.

    Each dict holds audit_record's keyword arguments (action, actor, obj, before, after, ...).
    Call it inside the caller's transaction, like audit_record. Inside audit_chain_last the
    list returned is filled when that scope ends."""
    if not events:
        return []
    return _append([_event_fields(**event) for event in events], single=False)


_EVENT_FIELDS = (
    "chain_seq",
    "occurred_at",
    "actor_id",
    "actor_username",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "before",
    "after",
    "request_id",
    "ip",
    "prev_hash",
    "hash",
)
_EVENT_COLUMNS = ("id", *_EVENT_FIELDS)
