"""The order's life: its statuses and the one table of transitions allowed between them."""

from __future__ import annotations

from django.db import models

from oms.errors import Conflict


class OrderStatus(models.TextChoices):
    PENDING_COMPLIANCE = "PENDING_COMPLIANCE", "Pending compliance"
    BLOCKED = "BLOCKED", "Blocked by compliance"
    AWAITING_OVERRIDE = "AWAITING_OVERRIDE", "Awaiting override"
    APPROVED = "APPROVED", "Approved"
    STAGED = "STAGED", "Staged on desk"
    PENDING_NEW = "PENDING_NEW", "Routed (pending new)"
    WORKING = "WORKING", "Working"
    PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
    FILLED = "FILLED", "Filled"
    PENDING_CANCEL = "PENDING_CANCEL", "Pending cancel"
    CANCELLED = "CANCELLED", "Cancelled"
    PENDING_REPLACE = "PENDING_REPLACE", "Pending replace"
    REPLACED = "REPLACED", "Replaced"
    REJECTED = "REJECTED", "Rejected"
    EXPIRED = "EXPIRED", "Expired"
    DONE_FOR_DAY = "DONE_FOR_DAY", "Done for day"


S = OrderStatus

# Everything a live, routed order can move to as the broker reports on it.
_LIVE_AT_BROKER = {
    S.PARTIALLY_FILLED,
    S.FILLED,
    S.PENDING_CANCEL,
    S.PENDING_REPLACE,
    S.CANCELLED,
    S.EXPIRED,
    S.DONE_FOR_DAY,
}

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_COMPLIANCE: frozenset(
        {S.APPROVED, S.BLOCKED, S.AWAITING_OVERRIDE, S.CANCELLED, S.REJECTED}
    ),
    # A block is lifted only by a Compliance override; amending sends the order back to checks.
    S.BLOCKED: frozenset({S.APPROVED, S.PENDING_COMPLIANCE, S.CANCELLED}),
    S.AWAITING_OVERRIDE: frozenset({S.APPROVED, S.PENDING_COMPLIANCE, S.CANCELLED}),
    S.APPROVED: frozenset({S.STAGED, S.PENDING_COMPLIANCE, S.CANCELLED}),
    # Staged orders are routed, crossed internally (filled without a broker), or pulled back.
    S.STAGED: frozenset(
        {S.PENDING_NEW, S.APPROVED, S.PENDING_COMPLIANCE, S.CANCELLED, S.PARTIALLY_FILLED, S.FILLED}
    ),
    # Some brokers fill without acknowledging first, or reject outright.
    S.PENDING_NEW: frozenset(
        {
            S.WORKING,
            S.REJECTED,
            S.PARTIALLY_FILLED,
            S.FILLED,
            S.PENDING_CANCEL,
            S.CANCELLED,
            S.EXPIRED,
        }
    ),
    S.WORKING: frozenset(_LIVE_AT_BROKER),
    # A bust (or a re-allocation) that takes back every share filled so far reopens it.
    S.PARTIALLY_FILLED: frozenset(_LIVE_AT_BROKER | {S.WORKING}),
    # A cancel or replace the broker refuses puts the order back where it was.
    S.PENDING_CANCEL: frozenset(
        {S.CANCELLED, S.WORKING, S.PARTIALLY_FILLED, S.FILLED, S.EXPIRED, S.DONE_FOR_DAY}
    ),
    S.PENDING_REPLACE: frozenset(
        {
            S.REPLACED,
            S.WORKING,
            S.PARTIALLY_FILLED,
            S.FILLED,
            S.PENDING_CANCEL,
            S.CANCELLED,
            S.EXPIRED,
            S.DONE_FOR_DAY,
        }
    ),
    S.REPLACED: frozenset(_LIVE_AT_BROKER | {S.WORKING}),
    # A bust reopens a filled order; a correction may leave it partially filled.
    S.FILLED: frozenset({S.PARTIALLY_FILLED, S.WORKING}),
    # GTC orders come back the next day.
    S.DONE_FOR_DAY: frozenset(
        {S.WORKING, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED, S.PENDING_CANCEL}
    ),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}

TERMINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
# Orders the PM has released but the trade is not finished: they count in projected positions.
OPEN = frozenset(set(S) - TERMINAL - {S.FILLED, S.BLOCKED, S.REJECTED})
AT_BROKER = frozenset(
    {
        S.PENDING_NEW,
        S.WORKING,
        S.PARTIALLY_FILLED,
        S.PENDING_CANCEL,
        S.PENDING_REPLACE,
        S.REPLACED,
        S.DONE_FOR_DAY,
    }
)
BEFORE_ROUTING = frozenset(
    {S.PENDING_COMPLIANCE, S.BLOCKED, S.AWAITING_OVERRIDE, S.APPROVED, S.STAGED}
)


class InvalidTransition(Conflict):
    code = "invalid_transition"

    def __init__(self, current: str, target: str):
        super().__init__(
            f"An order cannot go from {current} to {target}.",
            details={"from": current, "to": target},
        )
        self.current = current
        self.target = target


def can_transition(current: str, target: str) -> bool:
    return OrderStatus(target) in TRANSITIONS[OrderStatus(current)]


def check_transition(current: str, target: str) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(current, target)
