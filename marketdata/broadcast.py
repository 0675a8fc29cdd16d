"""Quotes to the screens: messages on the "marketdata" live group (oms.fanout), which the
blotter's and the positions pages' existing feeds follow. Market data is public within the firm (no account in
it), so one group serves every role; and it is latest-state, so it carries no sequence number:
a missed message is superseded by the next.

A message is compact, in columns: {"type": "quotes", "at": ..., "cols": QUOTE_COLUMNS,
"rows": [[symbol, bid, ask, last, day_volume, day_vwap, src], ...]}, the numbers as the
broker's text (no float rounding, no Decimal encoding), null where absent; `src` is the
broker's SendingTime of the latest update the row carries, in seconds since the epoch (what
latency is measured from). Every push goes to every page, so its size is paid twenty times
over: a row is about a third of the same quote as an object.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

MARKETDATA_GROUP = "marketdata"
QUOTE_COLUMNS = ("symbol", "bid", "ask", "last", "day_volume", "day_vwap", "src")


def quotes_message(rows: list[list], *, sent_at: float) -> str:
    """The text of one push of these rows (in QUOTE_COLUMNS order)."""
    return json.dumps(
        {
            "type": "quotes",
            "at": datetime.fromtimestamp(sent_at, UTC).isoformat(),
            "cols": QUOTE_COLUMNS,
            "rows": rows,
        },
        separators=(",", ":"),
    )


def quotes_rows(message: dict) -> list[dict]:
    """A pushed message's rows as {column: value} (for readers in Python: tests, the bench)."""
    cols = message["cols"]
    return [dict(zip(cols, row, strict=True)) for row in message["rows"]]


_clients: dict = {}  # event loop -> async Redis client


async def quotes_send(text: str) -> None:
    """Send one message to every page following quotes: one Redis PUBLISH, which each web
    process's one subscription hands to its pages (oms.fanout; not a copy per page through the
    channel layer). Awaited by the caller: the gateway's pusher sends one at a time, so a slow
    send delays the next rather than queueing it."""
    import asyncio

    import redis.asyncio as aredis
    from django.conf import settings

    from oms import fanout

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aredis.Redis.from_url(settings.REDIS_URL)
    await fanout.publish_text(client, MARKETDATA_GROUP, text)
