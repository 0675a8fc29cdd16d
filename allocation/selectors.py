"""Reading the booking ledger for the Operations page and the back-office API: trading days,
allocations, shares and settlement files."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Prefetch, QuerySet

from oms.models import Custodian
from oms.money import Terms, notional_rounded
from orders.models import SELL_SIDES, Block, Order

from .models import Allocation, BlockDay, Booking, OrderShare, SettlementFile, StreetFill
from .settlement_content import settlement_file_content

ZERO = Decimal(0)


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


# --- the back-office API ----------------------------------------------------------------------


def block_exists(*, block_id: int) -> bool:
    return Block.objects.filter(pk=block_id).exists()


def custodian_exists(*, code: str) -> bool:
    return Custodian.objects.filter(code=code).exists()


def block_days_with_shares(*, block_id: int) -> QuerySet[BlockDay]:
    """A block's trading days, oldest first, each with its orders' shares (two queries
    however many days and orders)."""
    return (
        BlockDay.objects.filter(block_id=block_id)
        .prefetch_related(
            Prefetch(
                "shares",
                queryset=OrderShare.objects.select_related("account").order_by("order_id"),
            )
        )
        .order_by("trade_date")
    )


def allocations_by_ids(*, allocation_ids: Iterable[int]) -> QuerySet[Allocation]:
    """These allocations (e.g. what a finalise just wrote), in the order `allocations` lists."""
    return (
        Allocation.objects.filter(pk__in=list(allocation_ids))
        .select_related("account", "block__security")
        .order_by("-trade_date", "block_id", "account__code", "-version")
    )


def settlement_files_filtered(
    *, trade_date: date | None = None, custodian_code: str | None = None
) -> QuerySet[SettlementFile]:
    """`settlement_files`, narrowed; newest trade date first, then custodian and version."""
    qs = settlement_files()
    if trade_date is not None:
        qs = qs.filter(trade_date=trade_date)
    if custodian_code:
        qs = qs.filter(custodian__code=custodian_code)
    return qs.order_by("-trade_date", "custodian__code", "-version")


# --- reconciliation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BookingDifference:
    kind: str  # street, shares, orders, positions, allocations, charges, files
    key: str
    field: str
    expected: Decimal | str
    actual: Decimal | str

    def __str__(self) -> str:
        return f"{self.kind} {self.key} {self.field}: expected {self.expected}, kept {self.actual}"


def booking_differences(
    *, executed_by_block: dict[int, tuple[Decimal, Decimal]] | None = None
) -> list[BookingDifference]:
    """Check the booking ledger against what feeds it and what it feeds, to zero difference:
    street fills against the brokers' executions (when given) and each block's days; each
    day's shares against its executions; orders against their shares; the positions ledger
    against the bookings; allocations against the street gross, positions, cash and charges;
    the latest custodian file of each date against the allocations it should list."""
    from positions.selectors import bookings_by_ref, cash_by_ref

    diffs: list[BookingDifference] = []

    def check(kind, key, field, expected, actual):
        if expected != actual:
            diffs.append(BookingDifference(kind, str(key), field, expected, actual))

    street = defaultdict(lambda: [ZERO, ZERO])
    for block_id, qty, price in StreetFill.objects.filter(busted_at__isnull=True).values_list(
        "block_id", "quantity", "price"
    ):
        street[block_id][0] += qty
        street[block_id][1] += qty * price
    if executed_by_block is not None:
        for block_id in sorted(set(executed_by_block) | set(street)):
            quantity, value = executed_by_block.get(block_id, (ZERO, ZERO))
            check("street", f"block {block_id}", "quantity", quantity, street[block_id][0])
            check("street", f"block {block_id}", "value", value, street[block_id][1])

    days = {d.pk: d for d in BlockDay.objects.select_related("block__security")}
    per_day = defaultdict(lambda: [ZERO, ZERO])
    for day_id, qty, price in StreetFill.objects.filter(busted_at__isnull=True).values_list(
        "day_id", "quantity", "price"
    ):
        per_day[day_id][0] += qty
        per_day[day_id][1] += qty * price
    shares = defaultdict(lambda: [ZERO, ZERO])
    by_order: dict[int, Decimal] = defaultdict(Decimal)
    for day_id, order_id, qty, value in OrderShare.objects.values_list(
        "day_id", "order_id", "quantity", "value"
    ):
        shares[day_id][0] += qty
        shares[day_id][1] += value
        by_order[order_id] += qty
    for day_id, day in days.items():
        key = f"block {day.block_id} {day.trade_date}"
        check("street", key, "executed", per_day[day_id][0], day.executed)
        check("street", key, "value", per_day[day_id][1], day.value)
        check("shares", key, "quantity", day.executed, shares[day_id][0])
        check("shares", key, "value", day.value, shares[day_id][1])
    for order_id, cum in Order.objects.filter(pk__in=list(by_order)).values_list("pk", "cum_qty"):
        check("orders", f"order {order_id}", "cum_qty", by_order[order_id], cum)

    # Every booking of the ledger is in the positions ledger, with the same size and money.
    booked = defaultdict(lambda: [ZERO, ZERO])
    for account_id, security_id, ref, qty, net in Booking.objects.values_list(
        "account_id", "day__block__security_id", "fill_ref", "quantity", "net_money"
    ):
        booked[(account_id, security_id, ref)][0] += qty
        booked[(account_id, security_id, ref)][1] += net
    kept = bookings_by_ref(refs={ref for _, _, ref in booked})
    for key in sorted(set(booked) | set(kept), key=str):
        for i, field in enumerate(("quantity", "cash")):
            check("positions", key, field, booked[key][i], kept.get(key, (ZERO, ZERO))[i])

    current = list(Allocation.objects.filter(replaced_at__isnull=True).select_related("account"))
    per_day_alloc = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for a in current:
        per_day_alloc[a.day_id][0] += a.quantity
        per_day_alloc[a.day_id][1] += a.gross_amount
        per_day_alloc[a.day_id][2] += a.accrued_interest
    charges = cash_by_ref(refs={f"allocation:{a.pk}" for a in current})
    for a in current:
        key = f"allocation {a.pk} ({a.account.code}, block {a.block_id}, {a.trade_date})"
        check(
            "charges",
            key,
            "cash",
            -(a.commission + a.fees),
            charges.get(f"allocation:{a.pk}", ZERO),
        )
        paid = a.commission + a.fees
        money = a.gross_amount + a.accrued_interest
        net = money - paid if a.side in SELL_SIDES else money + paid
        check("allocations", key, "net_amount", net, a.net_amount)
    for day_id, day in days.items():
        if day.status != BlockDay.Status.FINALISED:
            continue
        key = f"block {day.block_id} {day.trade_date}"
        quantity, gross, accrued = per_day_alloc[day_id]
        check("allocations", key, "quantity", day.executed, quantity)
        # The street's money from its executions again (oms.money.notional: per 100 of face
        # and accrued interest to the settlement date for a bond, a contract's multiplier).
        street = notional_rounded(
            terms=Terms.of(day.block.security),
            quantity=day.executed,
            value=day.value,
            on=day.settle_date,
            currency=day.block.security.currency,
        )
        check("allocations", key, "gross", street.clean if day.executed else ZERO, gross)
        check("allocations", key, "accrued", street.accrued if day.executed else ZERO, accrued)
        check("allocations", key, "street_gross", day.street_gross, gross)

    latest = {}
    for f in SettlementFile.objects.order_by("custodian_id", "trade_date", "version"):
        latest[(f.custodian_id, f.trade_date)] = f
    for (custodian_id, trade_date), f in sorted(latest.items()):
        _, checksum = settlement_file_content(custodian_id=custodian_id, trade_date=trade_date)
        check("files", f.filename, "checksum (would a new version differ?)", checksum, f.checksum)
    return diffs


def blocks_booking_due(*, block_ids: Iterable[int] | None = None) -> list[int]:
    """Blocks with an open trading day whose executions are not all booked to their orders
    yet: the day's executed quantity or value differs from what its order shares add up to.
    Wide blocks are booked this way, off the report's path (allocation.booking
    .bookings_due_book); a narrow block is booked with its reports, so it is here only between
    a report and its commit, or when its booking failed. One query over the open days."""
    where = ""
    params: list = []
    if block_ids is not None:
        ids = sorted(set(block_ids))
        if not ids:
            return []
        where = "AND d.block_id = ANY(%s)"
        params.append(ids)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT DISTINCT d.block_id
              FROM {BlockDay._meta.db_table} d
              LEFT JOIN (
                    SELECT s.day_id, sum(s.quantity) AS quantity, sum(s.value) AS value
                      FROM {OrderShare._meta.db_table} s
                      JOIN {BlockDay._meta.db_table} o ON o.id = s.day_id AND o.status = 'OPEN'
                     GROUP BY s.day_id
                   ) booked ON booked.day_id = d.id
             WHERE d.status = 'OPEN' {where}
               AND (d.executed <> coalesce(booked.quantity, 0)
                    OR d.value <> coalesce(booked.value, 0))
             ORDER BY d.block_id
            """,
            params,
        )
        return [row[0] for row in cursor.fetchall()]


def account_block_allocations(*, block_id: int, account_id: int) -> QuerySet[Allocation]:
    """The account's current allocations of one block, one per trade date."""
    return Allocation.objects.filter(
        block_id=block_id, account_id=account_id, replaced_at__isnull=True
    ).order_by("trade_date")
