"""The live feed's recent history in Redis, so a reconnecting page resumes instead of reloading.

Per websocket group three keys sit next to the channel layer's (same prefix):
- `seq:<group>`: the last sequence number given out (what the snapshot reports);
- `seq-epoch:<group>`: when that numbering started. A Redis restarted empty (or a key evicted)
  starts the numbering again at 1; a page's old sequence number then means nothing, and the
  epoch tells the two apart;
- `feed:<group>`: a sorted set of the last OMS_FEED_HISTORY messages (score = sequence number,
  member = the message as sent), expiring OMS_FEED_HISTORY_SECONDS after the last one.

Both sides are one Lua script each, so they are atomic against each other: a message is numbered,
kept and published (oms.fanout: one PUBLISH per group, whatever the number of pages) in one step (the history never has a hole below its newest entry), and a reader sees
the number and the entries at one instant. A page that reconnects with `since` (its last
sequence number) and its epoch gets exactly the messages after it when the history still holds
all of them, or is told to resync (take a snapshot) when it does not.

A PM's group only ever receives rows of the accounts the PM manages (orders.broadcast builds
each group's message from its own rows), so its history holds nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.conf import settings

from oms.fanout import live_channel

# A message is {"type": "orders", "seq": N, "epoch": "E", "rows": [...]} in json.dumps' own
# layout, put together in the script (stored) and here (sent live): the same bytes.
HEAD = '{"type": "orders", "seq": '

_PUBLISH = """
local cap = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local seq_key, epoch_key, history_key = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local seq = redis.call('INCR', seq_key)
  local epoch = redis.call('GET', epoch_key)
  if seq == 1 or not epoch then
    -- A numbering that starts (again): a new epoch, and nothing of the old one is kept.
    local now = redis.call('TIME')
    epoch = now[1] .. string.format('%06d', tonumber(now[2]))
    redis.call('SET', epoch_key, epoch)
    redis.call('DEL', history_key)
  end
  local text = ARGV[3 + 3 * i] .. seq .. ', "epoch": "' .. epoch .. '"' .. ARGV[4 + 3 * i]
  if cap > 0 then
    redis.call('ZADD', history_key, seq, text)
    redis.call('ZREMRANGEBYRANK', history_key, 0, -cap - 1)
    redis.call('EXPIRE', history_key, ttl)
  end
  -- Published in the same step as numbered: every process's pages get a group's messages
  -- in the order of their numbers, whichever process sent them.
  redis.call('PUBLISH', ARGV[5 + 3 * i], seq .. '\\n' .. text)
  out[#out + 1] = seq
  out[#out + 1] = epoch
end
return out
"""

_RESUME = """
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = redis.call('GET', KEYS[2]) or ''
local since = tonumber(ARGV[1])
if seq == 0 then epoch = '' end
if epoch ~= ARGV[2] then return {seq, epoch, 'epoch'} end
if since > seq then return {seq, epoch, 'ahead'} end
if seq - since > tonumber(ARGV[3]) then return {seq, epoch, 'trimmed'} end
local entries = redis.call('ZRANGEBYSCORE', KEYS[3], since + 1, seq)
if #entries ~= seq - since then return {seq, epoch, 'trimmed'} end
local out = {seq, epoch, 'ok'}
for _, entry in ipairs(entries) do out[#out + 1] = entry end
return out
"""


def _prefix() -> str:
    return settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("prefix", "oms")


def sequence_key(group: str) -> str:
    return f"{_prefix()}:seq:{group}"


def _keys(group: str) -> list[str]:
    prefix = _prefix()
    return [f"{prefix}:seq:{group}", f"{prefix}:seq-epoch:{group}", f"{prefix}:feed:{group}"]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def history_limits() -> tuple[int, int]:
    """(messages kept per group, seconds the history outlives its last message)."""
    return settings.OMS_FEED_HISTORY, settings.OMS_FEED_HISTORY_SECONDS


async def publish_numbered(client, per_group: dict[str, str]) -> list[tuple[str, int, str]]:
    """Number each group's message, keep it in the group's history and publish it to the
    group's live channel (oms.fanout), in one round trip and one atomic step.

    `per_group` maps a group to the JSON of its rows; returns (group, seq, message text) per
    group, in the same order. The message names its epoch, so a page whose socket outlived a
    Redis restart sees the new numbering instead of ignoring "old" numbers for ever."""
    groups = list(per_group)
    keys = [key for group in groups for key in _keys(group)]
    cap, ttl = history_limits()
    args: list = [cap, ttl]
    tails = []
    for group in groups:
        tail = ', "rows": ' + per_group[group] + "}"
        tails.append(tail)
        args += [HEAD, tail, live_channel(group)]
    numbered = await client.eval(_PUBLISH, len(keys), *keys, *args)
    out = []
    for i, group in enumerate(groups):
        seq, epoch = int(numbered[2 * i]), _text(numbered[2 * i + 1])
        out.append((group, seq, f'{HEAD}{seq}, "epoch": "{epoch}"{tails[i]}'))
    return out


def sequence_position(group: str) -> tuple[int, str]:
    """(the last sequence number sent to `group`, its epoch): 0 and "" before the first."""
    import redis

    seq_key, epoch_key, _ = _keys(group)
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        seq, epoch = client.mget(seq_key, epoch_key)
    finally:
        client.close()
    seq = int(seq or 0)
    return seq, (_text(epoch) if epoch is not None and seq else "")


@dataclass
class Resume:
    """What a page that last saw `since` of `epoch` needs: the missed messages in order
    (`ok`), or a snapshot (`reason`: "epoch" — another numbering; "ahead" — a number the group
    never reached; "trimmed" — the history no longer holds the gap)."""

    seq: int
    epoch: str
    reason: str
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


async def resume_read(client, *, group: str, since: int, epoch: str) -> Resume:
    cap, _ = history_limits()
    result = await client.eval(_RESUME, 3, *_keys(group), since, epoch, cap)
    seq, current_epoch, reason, *messages = result
    return Resume(
        seq=int(seq),
        epoch=_text(current_epoch),
        reason=_text(reason),
        messages=[_text(m) for m in messages],
    )


def rows_only(messages: list[str], *, account_ids: set[int]) -> list[str]:
    """The messages with only the rows of these accounts: a PM's replay shows what they manage
    now, as their snapshot would, even for messages sent before an account was taken away.
    Every message stays (an empty one keeps the numbering contiguous)."""
    out = []
    for text in messages:
        message = json.loads(text)
        rows = [row for row in message["rows"] if row["account_id"] in account_ids]
        if len(rows) != len(message["rows"]):
            message["rows"] = rows
            text = json.dumps(message)
        out.append(text)
    return out
