"""Live feeds fanned out once per process: one Redis PUBLISH per message, however many pages.

The channel layer hands every group message to every member's own channel: with 100 blotters
open, one order change was 100 messages through Redis (each encoded, stored, popped and decoded
again in the web process) before the 100 websocket frames. Here a feed's message is published
once, already encoded, on the group's Redis pub/sub channel (`<prefix>:<db>:live:<group>`);
each web process holds one subscription per event loop (Daphne runs one) to the groups its own
consumers follow, and hands the text to each of them. Nothing is queued in Redis per consumer.

A message is `<seq>\\n<text>`: the number lets a consumer that has just replayed the group's
history drop what it already sent without parsing the text. What pub/sub does not give (a
message published while nobody here was subscribed, or while Redis was away, is gone) the feed
already covers: pages see the gap in the sequence numbers and resume from the history
(orders.feed_history), or take a snapshot.

Publishers: `publish_text` (any async Redis client) or a Lua script that PUBLISHes to
`live_channel(group)` (orders.feed_history numbers, keeps and publishes in one step).
Subscribers: `await subscribe(group, deliver)` with `async deliver(seq, text)`, and
`await unsubscribe(group, deliver)` when done. Deliveries to a process's consumers run one
after another on the subscription's task, in the order Redis delivered them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable

from django.conf import settings
from redis.connection import parse_url

logger = logging.getLogger(__name__)

Deliver = Callable[[int, str], Awaitable[None]]

# How long a subscriber waits for Redis to confirm a new subscription before going on (the
# page then recovers whatever it missed through its sequence numbers).
SUBSCRIBE_WAIT_S = 5.0
# The receiving task wakes at least this often, so that health checks (PING) run on an idle
# connection and a dead one is found and reconnected.
POLL_S = 5.0


def _prefix() -> str:
    return settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("prefix", "oms")


def live_channel(group: str) -> str:
    # Pub/sub channels belong to the whole Redis server, not to a database number: the number
    # is in the name, so two OMS on one server (another database, the same prefix) never see
    # each other's feeds.
    return f"{_prefix()}:{_database_number(settings.REDIS_URL)}:live:{group}"


@functools.lru_cache(maxsize=8)
def _database_number(redis_url: str) -> int:
    return int(parse_url(redis_url).get("db") or 0)


def encode(seq: int, text: str) -> str:
    return f"{seq}\n{text}"


async def publish_text(client, group: str, text: str, *, seq: int = 0) -> None:
    """PUBLISH one message to every process following `group` (seq 0: not numbered)."""
    await client.publish(live_channel(group), encode(seq, text))


class _Hub:
    """One event loop's subscription: which local deliverers follow which group."""

    def __init__(self) -> None:
        import redis.asyncio as aredis

        self.client = aredis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=5,
            socket_keepalive=True,
            health_check_interval=15,
        )
        self.pubsub = self.client.pubsub()
        self.followers: dict[str, list[Deliver]] = {}
        self.confirmed: dict[str, asyncio.Event] = {}
        self.lock = asyncio.Lock()
        self.task: asyncio.Task | None = None

    async def subscribe(self, group: str, deliver: Deliver) -> None:
        channel = live_channel(group)
        async with self.lock:
            followers = self.followers.setdefault(channel, [])
            if deliver not in followers:
                followers.append(deliver)
            confirmed = self.confirmed.get(channel)
            if confirmed is None:
                confirmed = self.confirmed[channel] = asyncio.Event()
                try:
                    await self.pubsub.subscribe(channel)
                except BaseException:
                    # Redis unreachable: the consumer fails to connect, and the next one
                    # subscribes afresh.
                    del self.confirmed[channel]
                    followers.remove(deliver)
                    if not followers:
                        del self.followers[channel]
                    raise
            if self.task is None or self.task.done():
                self.task = asyncio.ensure_future(self._receive())
        # Whatever is published once Redis has the subscription reaches this deliverer.
        try:
            await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_WAIT_S)
        except TimeoutError:
            logger.warning("Redis did not confirm the subscription to %s in time", channel)

    async def unsubscribe(self, group: str, deliver: Deliver) -> None:
        channel = live_channel(group)
        async with self.lock:
            followers = self.followers.get(channel, [])
            if deliver in followers:
                followers.remove(deliver)
            if not followers and channel in self.followers:
                del self.followers[channel]
                self.confirmed.pop(channel, None)
                try:
                    await self.pubsub.unsubscribe(channel)
                except Exception:
                    # Redis away: the reconnect resubscribes only what is still followed.
                    logger.exception("unsubscribing from %s failed", channel)

    async def _receive(self) -> None:
        while True:
            if not self.followers:
                # Nobody here follows a feed: stop until the next subscribe starts a task
                # (no await between this check and the end, so none is missed).
                self.task = None
                return
            try:
                if not self.pubsub.subscribed:
                    await asyncio.sleep(0.1)
                    continue
                message = await self.pubsub.get_message(timeout=POLL_S)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis restarted or the connection dropped: the next read reconnects and
                # subscribes again to every channel still followed.
                logger.warning("the live feed subscription failed; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            if message["type"] == "subscribe":
                if channel in self.confirmed:
                    self.confirmed[channel].set()
                continue
            if message["type"] != "message":
                continue
            data = message["data"]
            if isinstance(data, bytes):
                data = data.decode()
            head, _, text = data.partition("\n")
            try:
                seq = int(head)
            except ValueError:
                continue
            for deliver in tuple(self.followers.get(channel, ())):
                try:
                    await deliver(seq, text)
                except Exception:
                    # One consumer's closed socket must not cost the others their message.
                    logger.exception("delivering a live message on %s failed", channel)


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _hub() -> _Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = _Hub()
    return hub


async def subscribe(group: str, deliver: Deliver) -> None:
    """Have `deliver(seq, text)` called with each message published to `group` from now on
    (returns once Redis has the subscription, or after SUBSCRIBE_WAIT_S)."""
    await _hub().subscribe(group, deliver)


async def unsubscribe(group: str, deliver: Deliver) -> None:
    await _hub().unsubscribe(group, deliver)
