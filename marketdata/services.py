"""Market data writes: the feed's quotes and bars, and the arrival prices TCA measures from.

Market data is not audited: it is the brokers' public information, arrives tens of thousands
of times a second, and the arrival prices (which decisions are measured against) are kept as
rows of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction


@dataclass
class BarDelta:
    """Trades of one minute since the last flush (merged into the minute's bar)."""

    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    value: Decimal


@dataclass
class QuoteUpdate:
    """The whole current market of one security (the feed keeps it; each flush writes it)."""

    security_id: int
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    day_volume: Decimal
    day_vwap: Decimal | None
    trade_date: date
    bars: list[BarDelta] = field(default_factory=list)


_QUOTES_SQL = """
INSERT INTO marketdata_quote (security_id, bid, ask, last, day_volume, day_vwap, trade_date,
                              source, updated_at)
SELECT u.security_id, u.bid, u.ask, u.last, u.day_volume, u.day_vwap, u.trade_date,
       %(source)s, %(as_of)s
  FROM unnest(%(security_id)s::bigint[], %(bid)s::numeric[], %(ask)s::numeric[],
              %(last)s::numeric[], %(day_volume)s::numeric[], %(day_vwap)s::numeric[],
              %(trade_date)s::date[])
       AS u (security_id, bid, ask, last, day_volume, day_vwap, trade_date)
ON CONFLICT (security_id) DO UPDATE SET bid = EXCLUDED.bid, ask = EXCLUDED.ask,
       last = EXCLUDED.last, day_volume = EXCLUDED.day_volume, day_vwap = EXCLUDED.day_vwap,
       trade_date = EXCLUDED.trade_date, source = EXCLUDED.source,
       updated_at = EXCLUDED.updated_at
"""

_BARS_SQL = """
INSERT INTO marketdata_minutebar AS b (security_id, start, open, high, low, close, volume, value)
SELECT * FROM unnest(%(security_id)s::bigint[], %(start)s::timestamptz[], %(open)s::numeric[],
                     %(high)s::numeric[], %(low)s::numeric[], %(close)s::numeric[],
                     %(volume)s::numeric[], %(value)s::numeric[])
ON CONFLICT (security_id, start) DO UPDATE SET
       high = GREATEST(b.high, EXCLUDED.high), low = LEAST(b.low, EXCLUDED.low),
       close = EXCLUDED.close, volume = b.volume + EXCLUDED.volume,
       value = b.value + EXCLUDED.value
"""


def quotes_apply(*, updates: list[QuoteUpdate], source: str, as_of: datetime) -> int:
    """Write the latest quote of each security and add their trades to the minute bars:
    two statements whatever the number of securities, each taking its rows as one array per
    column (a statement whose text does not grow with the rows is read once by the driver;
    one placeholder per value cost more than the write). Returns how many quotes."""
    if not updates:
        return 0
    quotes = {
        "source": source,
        "as_of": as_of,
        "security_id": [u.security_id for u in updates],
        "bid": [u.bid for u in updates],
        "ask": [u.ask for u in updates],
        "last": [u.last for u in updates],
        "day_volume": [u.day_volume for u in updates],
        "day_vwap": [u.day_vwap for u in updates],
        "trade_date": [u.trade_date for u in updates],
    }
    bars: dict[str, list] = {
        k: [] for k in ("security_id", "start", "open", "high", "low", "close", "volume", "value")
    }
    for u in updates:
        for b in u.bars:
            for key, value in (
                ("security_id", u.security_id),
                ("start", b.start),
                ("open", b.open),
                ("high", b.high),
                ("low", b.low),
                ("close", b.close),
                ("volume", b.volume),
                ("value", b.value),
            ):
                bars[key].append(value)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(_QUOTES_SQL, quotes)
        if bars["security_id"]:
            cur.execute(_BARS_SQL, bars)
    return len(updates)


def stale_after() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "OMS_MD_STALE_SECONDS", 15)))


_ARRIVAL_SQL = """
INSERT INTO marketdata_arrivalprice (kind, {subject}_id, security_id, at, bid, ask, mid, source)
SELECT %(kind)s, x.id, x.security_id, %(as_of)s, q.bid, q.ask,
       CASE WHEN q.bid IS NOT NULL AND q.ask IS NOT NULL THEN (q.bid + q.ask) / 2
            WHEN q.last IS NOT NULL THEN q.last
            ELSE s.reference_price END,
       CASE WHEN q.security_id IS NULL OR (q.bid IS NULL AND q.last IS NULL) THEN 'reference'
            WHEN q.updated_at < %(fresh_since)s THEN 'stale'
            ELSE 'feed' END
  FROM {table} x
  JOIN oms_security s ON s.id = x.security_id
  LEFT JOIN marketdata_quote q ON q.security_id = x.security_id
 WHERE x.id = ANY(%(ids)s)
ON CONFLICT DO NOTHING
"""


def arrival_capture(
    *, kind: str, as_of: datetime, order_ids: list[int] = (), block_id: int | None = None
) -> None:
    """Record the market now (mid of the latest quote, its last trade, or the reference price
    where no feed has the security) as the arrival price of these orders or of this block.
    One statement, in the caller's transaction; the first capture of an order or block stays."""
    if block_id is not None:
        subject, table, ids = "block", "orders_block", [block_id]
    else:
        subject, table, ids = "order", "orders_order", list(order_ids)
    if not ids:
        return
    with connection.cursor() as cur:
        cur.execute(
            _ARRIVAL_SQL.format(subject=subject, table=table),
            {"kind": kind, "as_of": as_of, "fresh_since": as_of - stale_after(), "ids": ids},
        )
