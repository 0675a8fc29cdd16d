"""Market data reads: quotes with their staleness, bars, interval VWAP and the day's close."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.db.models import Q, Sum

from fixgateway.models import Broker
from oms.models import Security

from .models import MinuteBar, Quote
from .services import stale_after


def feed_brokers() -> list[str]:
    """Codes of the active brokers whose row asks for market data (extra_config
    {"market_data": true})."""
    return [
        b.code
        for b in Broker.objects.filter(active=True).only("code", "extra_config")
        if (b.extra_config or {}).get("market_data")
    ]


def quote_row(quote: Quote | None, security: Security, *, as_of: datetime) -> dict:
    """One security's market as the screens show it: the feed's quote, flagged stale when it
    has not moved within OMS_MD_STALE_SECONDS, or the reference price where no feed has it."""
    if quote is None:
        ref = security.reference_price
        return {
            "security": security.pk,
            "symbol": security.symbol,
            "bid": None,
            "ask": None,
            "last": ref,
            "mid": ref,
            "day_volume": None,
            "day_vwap": None,
            "source": "reference",
            "stale": False,
            "updated_at": security.reference_price_at,
        }
    mid = (quote.bid + quote.ask) / 2 if quote.bid is not None and quote.ask is not None else None
    return {
        "security": security.pk,
        "symbol": security.symbol,
        "bid": quote.bid,
        "ask": quote.ask,
        "last": quote.last,
        "mid": mid if mid is not None else quote.last,
        "day_volume": quote.day_volume,
        "day_vwap": quote.day_vwap,
        "source": f"feed:{quote.source}",
        "stale": as_of - quote.updated_at > stale_after(),
        "updated_at": quote.updated_at,
    }


def quotes_list(*, as_of: datetime, security_ids: list[int] | None = None) -> list[dict]:
    """Quotes of these securities (every active one when None): two queries."""
    securities = Security.objects.filter(active=True).order_by("symbol")
    if security_ids is not None:
        securities = Security.objects.filter(pk__in=security_ids).order_by("symbol")
    securities = list(securities.only("id", "symbol", "reference_price", "reference_price_at"))
    quotes = Quote.objects.in_bulk([s.pk for s in securities])
    return [quote_row(quotes.get(s.pk), s, as_of=as_of) for s in securities]


def market_status(*, as_of: datetime) -> dict:
    """What the screens say about their prices: whether a feed is configured, how many
    securities it quotes and how many of those are stale."""
    brokers = feed_brokers()
    threshold = as_of - stale_after()
    quoted = Quote.objects.count()
    stale = Quote.objects.filter(updated_at__lt=threshold).count()
    return {
        "feed": bool(brokers),
        "brokers": brokers,
        "quoted": quoted,
        "stale": stale,
        "stale_seconds": stale_after().total_seconds(),
        "message": (
            f"Live prices from {', '.join(brokers)}"
            + (f"; {stale} of {quoted} stale" if stale else "")
            if brokers
            else "No market data feed configured: reference prices are shown."
        ),
    }


def bars_for(*, security_id: int, trade_date: date) -> list[MinuteBar]:
    return list(
        MinuteBar.objects.filter(security_id=security_id, start__date=trade_date).order_by("start")
    )


def interval_vwap(*, security_id: int, start: datetime, end: datetime) -> Decimal | None:
    """The market's VWAP over [start, end], from the minute bars that overlap it."""
    minute = start.replace(second=0, microsecond=0)
    agg = MinuteBar.objects.filter(
        security_id=security_id, start__gte=minute, start__lte=end
    ).aggregate(v=Sum("value"), q=Sum("volume"))
    if not agg["q"]:
        return None
    return agg["v"] / agg["q"]


def symbols_to_subscribe() -> list[str]:
    """Securities with working orders or positions: what the feed subscribes to."""
    from orders.lifecycle import OPEN
    from orders.models import Order
    from positions.models import Position

    working = Order.objects.filter(status__in=list(OPEN)).values("security_id")
    held = Position.objects.exclude(quantity=0).values("security_id")
    return list(
        Security.objects.filter(Q(pk__in=working) | Q(pk__in=held))
        .order_by("symbol")
        .values_list("symbol", flat=True)
    )


def securities_of_interest(*, user) -> list[int]:
    """Securities of the open orders and positions of the accounts the user may see: what the
    blotter's and positions pages' market panel lists."""
    from oms.selectors import accounts_visible_to
    from orders.lifecycle import OPEN
    from orders.models import Order
    from positions.models import Position

    accounts = accounts_visible_to(user).values("pk")
    working = Order.objects.filter(account__in=accounts, status__in=list(OPEN)).values(
        "security_id"
    )
    held = Position.objects.filter(account__in=accounts).exclude(quantity=0).values("security_id")
    return list(
        Security.objects.filter(Q(pk__in=working) | Q(pk__in=held))
        .order_by("symbol")
        .values_list("pk", flat=True)[:200]
    )
