"""What a custodian's settlement file says: its rows (the current allocations of the
custodian's accounts on a trade date), its CSV content and checksum, and what differs between
two versions. Reads only: the files written (allocation.settlement_files) and the
reconciliation (allocation.selectors.booking_differences) both use it."""

from __future__ import annotations

import hashlib
from datetime import date

from oms.csvio import write_csv
from oms.money import decimal_text, money_round

from .models import Allocation

SETTLEMENT_COLUMNS = [
    "trade_id",
    "version",
    "trade_date",
    "settlement_date",
    "account",
    "custodian_account",
    "symbol",
    "isin",
    "side",
    "quantity",
    "price",
    "gross_amount",
    "accrued_interest",
    "commission",
    "fees",
    "net_amount",
    "currency",
    "executing_broker",
]


def settlement_rows(*, custodian_id: int, trade_date: date) -> list[dict[str, str]]:
    """The current allocations of the custodian's accounts traded on the date: one row per
    account, block and trade date. The trade id stays the same across versions, so a new
    version of the file shows a rebooked trade as changed."""
    allocs = (
        Allocation.objects.filter(
            account__custodian_id=custodian_id, trade_date=trade_date, replaced_at__isnull=True
        )
        .select_related("account", "block__security", "block__broker")
        .order_by("block_id", "account_id")
    )
    rows = []
    for a in allocs:
        security = a.block.security
        rows.append(
            {
                "trade_id": f"A{a.block_id}-{a.account.code}-{a.trade_date:%Y%m%d}",
                "version": str(a.version),
                "trade_date": a.trade_date.isoformat(),
                "settlement_date": a.settle_date.isoformat(),
                "account": a.account.code,
                "custodian_account": a.account.custodian_account,
                "symbol": security.symbol,
                "isin": security.isin or "",
                "side": a.side,
                "quantity": decimal_text(a.quantity),
                "price": decimal_text(a.avg_price),
                "gross_amount": str(money_round(a.gross_amount, a.currency)),
                "accrued_interest": str(money_round(a.accrued_interest, a.currency)),
                "commission": str(money_round(a.commission, a.currency)),
                "fees": str(money_round(a.fees, a.currency)),
                "net_amount": str(money_round(a.net_amount, a.currency)),
                "currency": a.currency,
                "executing_broker": a.block.broker.code if a.block.broker else "INTERNAL",
            }
        )
    return rows


def file_content(rows: list[dict[str, str]]) -> tuple[str, str]:
    content = write_csv(SETTLEMENT_COLUMNS, ([r[c] for c in SETTLEMENT_COLUMNS] for r in rows))
    return content, hashlib.sha256(content.encode()).hexdigest()


def settlement_file_content(*, custodian_id: int, trade_date: date) -> tuple[str, str]:
    """The file's content and checksum as a new version would have them now."""
    return file_content(settlement_rows(custodian_id=custodian_id, trade_date=trade_date))


def file_differences(previous: list[dict], current: list[dict]) -> dict:
    old = {r["trade_id"]: r for r in previous}
    new = {r["trade_id"]: r for r in current}
    changed = {}
    for trade_id in sorted(old.keys() & new.keys()):
        fields = {
            k: [old[trade_id].get(k), new[trade_id].get(k)]
            for k in SETTLEMENT_COLUMNS
            if old[trade_id].get(k) != new[trade_id].get(k)
        }
        if fields:
            changed[trade_id] = fields
    return {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "changed": changed,
    }


def file_rows(content: str) -> list[dict]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(content)))
