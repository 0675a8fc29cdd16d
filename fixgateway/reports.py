"""What an inbound report is (`InboundReport`), what applying one gives (`ApplyResult`), and
the quarantine where a report that cannot be applied is kept for a person.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from oms.fields import ZERO

from .models import Broker, Quarantine
from .selectors import decimal_text as _dec

alerts = logging.getLogger("fixgateway.alerts")


@dataclass
class InboundReport:
    """One inbound message, in plain Python values (parsed by the QuickFIX application)."""

    msg_type: str
    cl_ord_id: str = ""
    orig_cl_ord_id: str = ""
    order_id: str = ""
    exec_id: str = ""
    exec_type: str = ""
    ord_status: str = ""
    exec_ref_id: str = ""
    last_qty: Decimal = ZERO
    last_px: Decimal = ZERO
    cum_qty: Decimal = ZERO
    avg_px: Decimal = ZERO
    leaves_qty: Decimal = ZERO
    trade_date: date | None = None
    poss_dup: bool = False
    text: str = ""
    ref_seq_num: int | None = None
    business_ref_id: str = ""
    # Rejects (35=3, 35=j, 35=9): what they refer to and why, as read by the application.
    ref_msg_type: str = ""
    ref_tag: int | None = None
    ref_tag_label: str = ""  # "847 (TargetStrategy)", from the QuickFIX data dictionary
    reject_reason: str = ""  # 373, 380 or 102
    reject_reason_text: str = ""
    # The session's sequence epoch (its QuickFIX store) the message was numbered in.
    seq_epoch: str = ""
    seq_num: int | None = None  # its MsgSeqNum (34), for the message monitor
    raw: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def content_hash(self) -> str:
        parts = [
            self.exec_type,
            self.ord_status,
            self.exec_ref_id,
            _dec(self.last_qty) or "0",
            _dec(self.last_px) or "0",
            _dec(self.cum_qty) or "0",
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


@dataclass
class ApplyResult:
    outcome: str  # applied | duplicate | quarantined | unknown
    dont_know: bool = False
    detail: str = ""


TRADE_TYPES = frozenset({"F", "1", "2"})  # 4.4 Trade; 4.2 Partial fill / Fill


def quarantine_record(
    *,
    broker: Broker | None,
    reason: str,
    report: InboundReport | None = None,
    detail: str = "",
    raw: str = "",
    as_of: datetime,
) -> Quarantine:
    alerts.error(
        "FIX quarantine %s broker=%s clordid=%s execid=%s: %s",
        reason,
        broker.code if broker else "?",
        report.cl_ord_id if report else "",
        report.exec_id if report else "",
        detail,
    )
    return Quarantine.objects.create(
        broker=broker,
        reason=reason,
        detail=detail[:4000],
        msg_type=report.msg_type if report else "",
        cl_ord_id=report.cl_ord_id if report else "",
        exec_id=report.exec_id if report else "",
        raw=(report.raw if report else raw) or raw,
        received_at=as_of,
    )


def quarantine_failure(
    *, broker: Broker, report: InboundReport, exc: Exception, as_of: datetime
) -> Quarantine:
    """A message that failed unexpectedly: kept raw, with the error, for a human."""
    return quarantine_record(
        broker=broker,
        reason="exception",
        report=report,
        detail=f"{type(exc).__name__}: {exc}",
        as_of=as_of,
    )
