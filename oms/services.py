"""Writing core data: securities from CSV, price updates, and the exceptions queue (opening an
OpsException from any app, resolving it with a note)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.services import audit_record

from .db import retry_on_conflict
from .errors import Conflict, DomainError, NotFound
from .models import AssetClass, Issuer, OpsException, Security


@dataclass
class ImportReport:
    applied: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def _decimal(raw: str, column: str, *, positive: bool = True) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except (InvalidOperation, AttributeError) as exc:
        raise ValueError(f"{column}: {raw!r} is not a number") from exc
    if not value.is_finite():
        raise ValueError(f"{column}: {raw!r} is not a number")
    if positive and value <= 0:
        raise ValueError(f"{column}: must be greater than zero, not {raw}")
    return value


SECURITY_COLUMNS = [
    "symbol",
    "name",
    "asset_class",
    "isin",
    "exchange_mic",
    "currency",
    "sector",
    "industry",
    "issuer",
    "lot_size",
    "tick_size",
    "shares_outstanding",
    "avg_daily_volume",
    "reference_price",
    "settlement_cycle",
]


@retry_on_conflict
def securities_load(*, text: str, as_of: datetime, overwrite: bool = False) -> ImportReport:
    """Create securities (and their issuers) from the reference CSV; existing symbols are kept
    as they are unless `overwrite`, so loading twice changes nothing."""
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text))
    missing = set(SECURITY_COLUMNS) - set(reader.fieldnames or [])
    if missing:
        report.errors.append(f"line 1: missing columns {sorted(missing)}")
        return report
    issuers = {i.name: i for i in Issuer.objects.all()}
    existing = set(Security.objects.values_list("symbol", flat=True))
    for line_no, row in enumerate(reader, start=2):
        symbol = (row["symbol"] or "").strip().upper()
        if not symbol:
            report.errors.append(f"line {line_no}: symbol is empty")
            continue
        if symbol in existing and not overwrite:
            report.unchanged += 1
            continue
        try:
            if row["asset_class"] not in AssetClass.values:
                raise ValueError(f"asset_class: unknown {row['asset_class']!r}")
            values = {
                "name": row["name"].strip(),
                "asset_class": row["asset_class"],
                "isin": (row["isin"] or "").strip() or None,
                "exchange_mic": row["exchange_mic"].strip(),
                "currency": row["currency"].strip().upper(),
                "sector": row["sector"].strip(),
                "industry": row["industry"].strip(),
                "lot_size": _decimal(row["lot_size"], "lot_size"),
                "tick_size": _decimal(row["tick_size"], "tick_size"),
                "shares_outstanding": _decimal(row["shares_outstanding"], "shares_outstanding"),
                "avg_daily_volume": _decimal(row["avg_daily_volume"], "avg_daily_volume"),
                "reference_price": _decimal(row["reference_price"], "reference_price"),
                "reference_price_at": as_of,
                "settlement_cycle": int(row["settlement_cycle"]),
            }
        except (ValueError, KeyError) as exc:
            report.errors.append(f"line {line_no}: {exc}")
            continue
        issuer_name = row["issuer"].strip() or values["name"]
        if issuer_name not in issuers:
            issuers[issuer_name] = Issuer.objects.create(name=issuer_name)
        values["issuer"] = issuers[issuer_name]
        Security.objects.update_or_create(symbol=symbol, defaults=values)
        existing.add(symbol)
        report.applied += 1
    return report


def prices_import(*, text: str, as_of: datetime, actor=None) -> ImportReport:
    """Update reference prices from CSV `symbol,price[,as_of]`. Good lines apply, each bad
    line is reported by number, and one audit event records the import."""
    report = ImportReport()
    reader = csv.reader(io.StringIO(text))
    rows = list(reader)
    if not rows:
        report.errors.append("line 1: the file is empty")
        return report
    header = [h.strip().lower() for h in rows[0]]
    if header[:2] != ["symbol", "price"]:
        report.errors.append("line 1: header must start with symbol,price")
        return report
    updates: dict[str, tuple[Decimal, datetime]] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            symbol = row[0].strip().upper()
            price = _decimal(row[1], "price")
            when = as_of
            if len(row) > 2 and row[2].strip():
                parsed = parse_datetime(row[2].strip())
                if parsed is None:
                    raise ValueError(f"as_of: {row[2]!r} is not a date-time")
                when = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)
        except IndexError:
            report.errors.append(f"line {line_no}: expected symbol,price")
            continue
        except ValueError as exc:
            report.errors.append(f"line {line_no}: {exc}")
            continue
        updates[symbol] = (price, when)
    with transaction.atomic():
        securities = Security.objects.select_for_update().filter(symbol__in=updates).order_by("pk")
        found = {s.symbol: s for s in securities}
        for symbol in updates:
            if symbol not in found:
                report.errors.append(f"{symbol}: unknown symbol")
        changed = []
        for symbol, security in found.items():
            price, when = updates[symbol]
            if price % security.tick_size != 0:
                report.errors.append(
                    f"{symbol}: price {price} is off the tick size {security.tick_size}"
                )
                continue
            if security.reference_price == price:
                report.unchanged += 1
                continue
            security.reference_price, security.reference_price_at = price, when
            changed.append(security)
        Security.objects.bulk_update(changed, ["reference_price", "reference_price_at"])
        report.applied = len(changed)
        audit_record(
            actor=actor,
            action="security.prices_import",
            object_type="oms.security",
            after={"applied": report.applied, "errors": report.errors[:50]},
        )
    return report


# --- The exceptions queue -----------------------------------------------------------------------
# Apps open an exception when something needs a person (a booking that failed after the close,
# a quarantined report, an order the broker never acknowledged) and may clear it themselves
# when the condition goes away; Operations and the desk resolve the rest with a note.

CODE_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")
NOTE_MAX = 2000
_SUMMARY_MAX = OpsException._meta.get_field("summary").max_length
_OPEN_COLUMNS = (
    "kind",
    "source",
    "ref",
    "summary",
    "detail",
    "block_id",
    "order_id",
    "broker_id",
    "opened_at",
    "last_seen_at",
    "occurrences",
    "resolution_note",
)


def _code(value: str, *, name: str, max_length: int) -> str:
    value = (value or "").strip()
    if not value or len(value) > max_length or not CODE_RE.match(value):
        raise DomainError(
            f"{name} must be a lower-case code of at most {max_length} characters, "
            f"not {value[:80]!r}.",
            code="invalid",
        )
    return value


def _one_line(text: str, max_length: int) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= max_length else line[: max_length - 1] + "\u2026"


def _note(note: str) -> str:
    note = (note or "").strip()
    if not note:
        raise DomainError("Give a note saying how it was resolved.", code="note_required")
    if len(note) > NOTE_MAX:
        raise DomainError(f"The note is at most {NOTE_MAX} characters.", code="note_too_long")
    return note


def exception_open(
    *,
    kind: str,
    ref: str,
    summary: str,
    detail: dict | None = None,
    source: str,
    block_id: int | None = None,
    order_id: int | None = None,
    broker_id: int | None = None,
    as_of: datetime,
) -> OpsException:
    """Open an exception, or count one more occurrence of the open one with the same kind and
    ref (occurrences + 1, last_seen_at, and the latest summary and detail; the ids given
    fill in those it lacked). One INSERT ... ON CONFLICT on the one-open-per-(kind, ref) index,
    so concurrent callers end on the same row. Runs in the caller's transaction when there is
    one (no savepoint), and is audited (`exception.open`) only when it opens a new row.

    kind and source are short lower-case codes; ref names the thing ("block:12:2026-10-09");
    detail is any JSON-able dict (Decimals and dates become strings)."""
    kind = _code(kind, name="kind", max_length=64)
    source = _code(source, name="source", max_length=32)
    ref = (ref or "").strip()
    if not ref or len(ref) > OpsException._meta.get_field("ref").max_length:
        raise DomainError("ref must be given, at most 200 characters.", code="invalid")
    summary = _one_line(summary, _SUMMARY_MAX)
    if not summary:
        raise DomainError("summary must be given.", code="invalid")
    if detail is not None and not isinstance(detail, dict):
        raise DomainError("detail must be a dict.", code="invalid")
    detail_json = json.dumps(detail or {}, cls=DjangoJSONEncoder)
    table = connection.ops.quote_name(OpsException._meta.db_table)
    columns = ", ".join(_OPEN_COLUMNS)
    # The conflict target names the partial unique index (kind, ref) WHERE resolved_at IS NULL:
    # a resolved row never conflicts, so the next occurrence after a resolution opens a new one.
    sql = f"""
        INSERT INTO {table} AS e ({columns})
        VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, 1, '')
        ON CONFLICT (kind, ref) WHERE resolved_at IS NULL DO UPDATE SET
            occurrences = e.occurrences + 1,
            last_seen_at = GREATEST(e.last_seen_at, EXCLUDED.last_seen_at),
            summary = EXCLUDED.summary,
            detail = EXCLUDED.detail,
            block_id = COALESCE(EXCLUDED.block_id, e.block_id),
            order_id = COALESCE(EXCLUDED.order_id, e.order_id),
            broker_id = COALESCE(EXCLUDED.broker_id, e.broker_id)
        RETURNING id, occurrences
    """
    params = [kind, source, ref, summary, detail_json, block_id, order_id, broker_id, as_of, as_of]
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            pk, occurrences = cursor.fetchone()
        exception = OpsException.objects.get(pk=pk)
        if occurrences == 1:  # a new row (a repeat is counted from 2)
            audit_record(
                action="exception.open",
                obj=exception,
                occurred_at=as_of,
                after={"kind": kind, "ref": ref, "source": source, "summary": summary},
            )
    return exception


def _resolve(exception: OpsException, *, note: str, actor, as_of: datetime) -> OpsException:
    """Resolve a locked, open exception and audit it."""
    exception.resolved_at = as_of
    exception.resolved_by = actor if getattr(actor, "is_authenticated", False) else None
    exception.resolution_note = note
    exception.save(update_fields=["resolved_at", "resolved_by", "resolution_note"])
    audit_record(
        actor=actor,
        action="exception.resolve",
        obj=exception,
        occurred_at=as_of,
        before={"status": "open", "occurrences": exception.occurrences},
        after={
            "status": "resolved",
            "kind": exception.kind,
            "ref": exception.ref,
            "note": note,
            "automatic": exception.resolved_by is None,
        },
    )
    return exception


def exception_resolve(*, exception_id: int, note: str, actor, as_of: datetime) -> OpsException:
    """A person resolves an open exception with a note (required: DomainError, a 400).
    Resolving one already resolved is a Conflict (409); a missing one is NotFound.
    Who may resolve is the interface's check (oms.roles.EXCEPTION_RESOLVERS)."""
    note = _note(note)
    with transaction.atomic(durable=True):
        exception = (
            OpsException.objects.select_for_update(of=("self",))
            .select_related("resolved_by")
            .filter(pk=exception_id)
            .first()
        )
        if exception is None:
            raise NotFound(f"Exception {exception_id} not found.")
        if not exception.is_open:
            by = exception.resolved_by.get_username() if exception.resolved_by else "the system"
            raise Conflict(
                f"Exception {exception_id} was already resolved by {by} at "
                f"{exception.resolved_at:%Y-%m-%d %H:%M:%S} UTC.",
                code="already_resolved",
            )
        return _resolve(exception, note=note, actor=actor, as_of=as_of)


def exceptions_resolve_for(
    *, kind: str, ref: str, note: str, as_of: datetime, actor=None
) -> OpsException | None:
    """Resolve the open exception of this kind and ref, if there is one, when the condition
    went away (a booking that now succeeded, an order acknowledged at last). Runs in the
    caller's transaction (no savepoint); returns the resolved exception or None."""
    note = _note(note)
    with transaction.atomic(savepoint=False):
        exception = (
            OpsException.objects.select_for_update()
            .filter(kind=kind, ref=ref, resolved_at__isnull=True)
            .first()
        )
        if exception is None:
            return None
        return _resolve(exception, note=note, actor=actor, as_of=as_of)
