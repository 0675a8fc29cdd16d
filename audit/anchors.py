"""The audit chain anchored outside the database.

The hash chain shows an edited event, unless whoever edits it also recomputes every later
hash, which the database owner can do (disable the append-only trigger, rewrite, rehash).
Each period the chain's head (its last chain_seq and hash) is signed with a key the database
does not hold (OMS_AUDIT_KEY, HMAC-SHA256) and appended to a log outside Postgres
(OMS_AUDIT_ANCHOR_DIR, one JSON line per anchor, a file a month). audit_verify then checks
the chain against every anchor: a rewrite before an anchor changes the hash the anchor
signed. It does not protect what happened after the last anchor (at most one period), nor
against someone who holds both the key and the anchor files; copy the directory to storage
with object lock to keep the files out of reach too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings

from .models import AuditEvent


@dataclass(frozen=True)
class Anchor:
    chain_seq: int
    hash: str
    anchored_at: str
    signature: str
    where: str  # file:line, for the report

    def message(self) -> bytes:
        return f"{self.chain_seq}:{self.hash}:{self.anchored_at}".encode()


@dataclass(frozen=True)
class AnchorBreak:
    anchor: Anchor
    reason: str


def _key() -> bytes:
    return settings.OMS_AUDIT_KEY.encode()


def _sign(message: bytes) -> str:
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()


def _directory() -> Path:
    return Path(settings.OMS_AUDIT_ANCHOR_DIR)


def anchors_read() -> Iterator[Anchor]:
    """Every anchor written, oldest first (the files sort by month)."""
    directory = _directory()
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("anchors-*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                where = f"{path.name}:{number}"
                try:
                    row = json.loads(line)
                    yield Anchor(
                        chain_seq=int(row["chain_seq"]),
                        hash=str(row["hash"]),
                        anchored_at=str(row["anchored_at"]),
                        signature=str(row["signature"]),
                        where=where,
                    )
                except (ValueError, KeyError, TypeError):
                    yield Anchor(0, "", "", "", where)  # unreadable: its signature fails


def audit_anchor_write(*, as_of: datetime) -> Anchor | None:
    """Sign the chain's head now and append it to this month's anchor file; None when the
    chain is empty or has not moved since the last anchor."""
    head = AuditEvent.objects.order_by("-chain_seq").values_list("chain_seq", "hash").first()
    if head is None:
        return None
    last = None
    for last in anchors_read():  # noqa: B007 - the last one is what we want
        pass
    if last is not None and last.chain_seq == head[0] and last.hash == head[1]:
        return None
    anchored_at = as_of.isoformat(timespec="microseconds")
    unsigned = Anchor(head[0], head[1], anchored_at, "", "")
    anchor = Anchor(head[0], head[1], anchored_at, _sign(unsigned.message()), "")
    directory = _directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"anchors-{as_of:%Y-%m}.jsonl"
    line = json.dumps(
        {
            "chain_seq": anchor.chain_seq,
            "hash": anchor.hash,
            "anchored_at": anchor.anchored_at,
            "signature": anchor.signature,
        }
    )
    # Append and flush to disk before saying it is written: an anchor is only worth what
    # survives a crash.
    with path.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())
    return anchor


def audit_anchors_verify() -> tuple[int, AnchorBreak | None]:
    """Check every anchor: its signature, and that the chain still holds the hash it signed
    at its position. Returns how many held and the first that does not."""
    checked = 0
    anchors = list(anchors_read())
    hashes = dict(
        AuditEvent.objects.filter(chain_seq__in={a.chain_seq for a in anchors}).values_list(
            "chain_seq", "hash"
        )
    )
    for anchor in anchors:
        if not hmac.compare_digest(_sign(anchor.message()), anchor.signature):
            return checked, AnchorBreak(anchor, "its signature does not match (anchor edited?)")
        found = hashes.get(anchor.chain_seq)
        if found is None:
            return checked, AnchorBreak(anchor, f"event #{anchor.chain_seq} is missing")
        if found != anchor.hash:
            return checked, AnchorBreak(
                anchor,
                f"event #{anchor.chain_seq} no longer has the hash signed on "
                f"{anchor.anchored_at}: the chain was rewritten at or before it",
            )
        checked += 1
    return checked, None
