"""Reading the booking ledger for the Operations page and the back-office API: trading days,
allocations, shares and settlement files."""

from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from .models import Allocation, BlockDay, OrderShare, SettlementFile


def block_days(
    *, status: str | None = None, block_id: int | None = None, trade_date: date | None = None
) -> QuerySet[BlockDay]:
    qs = BlockDay.objects.select_related("block__security", "block__broker")
    if status:
        qs = qs.filter(status=status)
    if block_id is not None:
        qs = qs.filter(block_id=block_id)
    if trade_date is not None:
        qs = qs.filter(trade_date=trade_date)
    return qs.order_by("-trade_date", "-block_id")


def allocations(
    *,
    block_id: int | None = None,
    account_code: str | None = None,
    trade_date: date | None = None,
    include_replaced: bool = False,
) -> QuerySet[Allocation]:
    qs = Allocation.objects.select_related("account", "block__security", "block__broker")
    if not include_replaced:
        qs = qs.filter(replaced_at__isnull=True)
    if block_id is not None:
        qs = qs.filter(block_id=block_id)
    if account_code:
        qs = qs.filter(account__code=account_code)
    if trade_date is not None:
        qs = qs.filter(trade_date=trade_date)
    return qs.order_by("-trade_date", "block_id", "account__code", "-version")


def day_shares(*, block_id: int) -> QuerySet[OrderShare]:
    return (
        OrderShare.objects.filter(day__block_id=block_id)
        .select_related("day", "order", "account")
        .order_by("day__trade_date", "order_id")
    )


def settlement_files() -> QuerySet[SettlementFile]:
    # The listing never needs the content itself.
    return SettlementFile.objects.select_related("custodian").defer("content")
