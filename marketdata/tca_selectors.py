"""TCA figures from the database: per order, then summed per block, broker, trader and PM.

A fixed handful of queries whatever the number of orders: the orders (with block, broker,
trader, PM), their arrival prices, their blocks' fill times, and the minute bars of the
securities over the period; the figures are computed in Python from those (marketdata.tca).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from statistics import median

from django.db.models import Max, Min

from oms.selectors import accounts_visible_to

from . import tca
from .models import ArrivalPrice, MinuteBar, Quote

DIMENSIONS = ("order", "block", "broker", "trader", "pm", "strategy")


@dataclass(frozen=True)
class TcaFilter:
    date_from: date
    date_to: date
    broker: str = ""
    pm: str = ""
    strategy: str = ""


def _day_start(d: date) -> datetime:
    from datetime import UTC

    return datetime.combine(d, time.min, tzinfo=UTC)


def tca_orders(*, user, flt: TcaFilter, as_of: datetime) -> list[dict]:
    """Every routed order the user may see (user None: the firm, for the end-of-day reports),
    received in the date range, with its figures."""
    from fixgateway.models import Execution
    from oms.models import Account
    from orders.models import Order

    accounts = Account.objects.all() if user is None else accounts_visible_to(user)
    qs = (
        Order.objects.filter(
            account__in=accounts,
            block__broker__isnull=False,
            received_at__gte=_day_start(flt.date_from),
            received_at__lt=_day_start(flt.date_to + timedelta(days=1)),
        )
        .select_related("account", "security", "pm", "block", "block__broker", "block__created_by")
        .order_by("received_at", "pk")
    )
    if flt.broker:
        qs = qs.filter(block__broker__code=flt.broker)
    if flt.pm:
        qs = qs.filter(pm__username=flt.pm)
    if flt.strategy:
        qs = qs.filter(block__strategy=flt.strategy)
    orders = list(qs)
    if not orders:
        return []
    order_ids = [o.pk for o in orders]
    block_ids = sorted({o.block_id for o in orders})
    arrivals_desk, arrivals_route = {}, {}
    for a in ArrivalPrice.objects.filter(order_id__in=order_ids, kind="desk"):
        arrivals_desk[a.order_id] = a
    for a in ArrivalPrice.objects.filter(block_id__in=block_ids, kind="route"):
        arrivals_route[a.block_id] = a
    fill_times = {
        row["fix_order__block_id"]: (row["first"], row["last"])
        for row in Execution.objects.filter(
            fix_order__block_id__in=block_ids, exec_type="F", state="APPLIED"
        )
        .values("fix_order__block_id")
        .annotate(first=Min("received_at"), last=Max("received_at"))
    }
    security_ids = {o.security_id for o in orders}
    start = min(o.received_at for o in orders).replace(second=0, microsecond=0)
    bars: dict[int, list[MinuteBar]] = defaultdict(list)
    for bar in MinuteBar.objects.filter(
        security_id__in=security_ids, start__gte=start - timedelta(days=1)
    ).order_by("start"):
        bars[bar.security_id].append(bar)
    quotes = Quote.objects.in_bulk(list(security_ids))

    rows = []
    for o in orders:
        block = o.block
        desk, route = arrivals_desk.get(o.pk), arrivals_route.get(block.pk)
        arrival = desk if desk is not None and desk.mid is not None else route
        first_fill, last_fill = fill_times.get(block.pk, (None, None))
        begin = arrival.at if arrival is not None else (block.routed_at or o.received_at)
        end = last_fill or as_of
        sec_bars = bars.get(o.security_id, [])
        interval = tca.vwap(
            (b.volume, b.value / b.volume)
            for b in sec_bars
            if b.volume and begin.replace(second=0, microsecond=0) <= b.start <= end
        )
        trade_day = (last_fill or begin).date()
        day_bars = [b for b in sec_bars if b.start.date() == trade_day]
        quote = quotes.get(o.security_id)
        if day_bars:
            close = day_bars[-1].close
        elif quote is not None and quote.trade_date == trade_day and quote.last is not None:
            close = quote.last
        else:
            close = o.security.reference_price
        avg = o.avg_price if o.cum_qty else None
        benchmark = arrival.mid if arrival is not None else None
        notional = (o.cum_qty * o.avg_price) if o.cum_qty and o.avg_price else Decimal(0)
        rows.append(
            {
                "order": o.pk,
                "block": block.pk,
                "account": o.account.code,
                "pm": o.pm.username,
                "trader": block.created_by.username if block.created_by_id else "",
                "broker": block.broker.code,
                "strategy": block.strategy,
                "symbol": o.security.symbol,
                "side": o.side,
                "quantity": o.quantity,
                "filled": o.cum_qty,
                "avg_price": avg,
                "status": o.status,
                "received_at": o.received_at,
                "arrival_desk": desk.mid if desk is not None else None,
                "arrival_route": route.mid if route is not None else None,
                "arrival_source": arrival.source if arrival is not None else "",
                "interval_vwap": interval,
                "close": close,
                "shortfall_arrival_bps": tca.shortfall_bps(
                    side=o.side, average=avg, benchmark=benchmark
                ),
                "shortfall_vwap_bps": tca.shortfall_bps(
                    side=o.side, average=avg, benchmark=interval
                ),
                "shortfall_close_bps": tca.shortfall_bps(side=o.side, average=avg, benchmark=close),
                "fill_rate": tca.rate(o.cum_qty, o.quantity),
                "first_fill_seconds": (
                    round((first_fill - begin).total_seconds(), 3) if first_fill else None
                ),
                "notional": notional,
                "rejected": o.status == "REJECTED",
                "cancelled": o.status == "CANCELLED",
            }
        )
    return rows


def tca_summary(rows: list[dict], *, by: str) -> list[dict]:
    """The orders' figures per block, broker, trader, PM or strategy: shortfalls weighted by
    executed notional, fill rate by quantity, median time to first fill, reject and cancel
    rates by order count."""
    if by not in DIMENSIONS:
        raise ValueError(by)
    groups: dict = defaultdict(list)
    for row in rows:
        groups[row[by]].append(row)
    out = []
    for key in sorted(groups, key=str):
        items = groups[key]
        firsts = [r["first_fill_seconds"] for r in items if r["first_fill_seconds"] is not None]
        out.append(
            {
                by: key,
                "orders": len(items),
                "quantity": sum(r["quantity"] for r in items),
                "filled": sum(r["filled"] for r in items),
                "notional": sum(r["notional"] for r in items),
                "fill_rate": tca.rate(
                    sum(r["filled"] for r in items), sum(r["quantity"] for r in items)
                ),
                **{
                    f"shortfall_{b}_bps": tca.weighted_bps(
                        (r[f"shortfall_{b}_bps"], r["notional"]) for r in items
                    )
                    for b in ("arrival", "vwap", "close")
                },
                "median_first_fill_seconds": median(firsts) if firsts else None,
                "reject_rate": tca.rate(sum(r["rejected"] for r in items), len(items)),
                "cancel_rate": tca.rate(sum(r["cancelled"] for r in items), len(items)),
            }
        )
    return out


def tca_distribution(rows: list[dict], *, width: int = 5) -> list[dict]:
    """How many orders fall in each band of `width` bps of shortfall against arrival."""
    counts: dict[int, int] = defaultdict(int)
    for row in rows:
        bps = row["shortfall_arrival_bps"]
        if bps is not None:
            counts[int((bps // width) * width)] += 1
    return [{"from_bps": k, "to_bps": k + width, "orders": counts[k]} for k in sorted(counts)]


def tca_fills_timeline(*, user, block_id: int) -> dict | None:
    """One block's fills over time against the market's minute bars (None if the user may not
    see it)."""
    from fixgateway.models import Execution
    from orders.models import Block

    block = (
        Block.objects.filter(pk=block_id, orders__account__in=accounts_visible_to(user))
        .select_related("security")
        .distinct()
        .first()
    )
    if block is None:
        return None
    fills = list(
        Execution.objects.filter(fix_order__block_id=block.pk, exec_type="F", state="APPLIED")
        .order_by("received_at")
        .values("received_at", "last_qty", "last_px")
    )
    start = (fills[0]["received_at"] if fills else block.routed_at or block.created_at).replace(
        second=0, microsecond=0
    )
    end = fills[-1]["received_at"] if fills else start
    bars = MinuteBar.objects.filter(
        security_id=block.security_id,
        start__gte=start - timedelta(minutes=30),
        start__lte=end + timedelta(minutes=30),
    ).order_by("start")
    return {
        "block": block.pk,
        "symbol": block.security.symbol,
        "fills": [
            {"at": f["received_at"], "quantity": f["last_qty"], "price": f["last_px"]}
            for f in fills
        ],
        "market": [
            {
                "at": b.start,
                "close": b.close,
                "vwap": (b.value / b.volume) if b.volume else None,
                "volume": b.volume,
            }
            for b in bars
        ],
    }
