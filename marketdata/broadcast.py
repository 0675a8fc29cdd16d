"""Quotes to the screens: one message per flush on the "marketdata" channel group, which the
blotter's and the positions pages' existing feeds join. Market data is public within the firm
(no account in it), so one group serves every role; and it is latest-state, so it carries no
sequence number: a missed message is superseded by the next."""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder

from oms.publish import submit

MARKETDATA_GROUP = "marketdata"


def quotes_publish(rows: list[dict], *, sent_at) -> None:
    if not rows:
        return
    text = json.dumps(
        {"type": "quotes", "at": sent_at.isoformat(), "quotes": rows}, cls=DjangoJSONEncoder
    )

    async def send() -> None:
        from channels.layers import get_channel_layer

        await get_channel_layer().group_send(
            MARKETDATA_GROUP, {"type": "marketdata.quotes", "text": text}
        )

    submit(send, what="quotes")
