"""Writing reference data: securities from CSV, price updates."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.services import audit_record

from .models import AssetClass, Issuer, Security


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


@transaction.atomic
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
