"""The rows every write of positions and cash goes through: a position or a cash balance got
or created and locked under concurrency (one, or many in pk order), and one cash movement booked
against its balance."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import F, Q

from oms.bulk_rows import any_of
from oms.db import within_transaction

from .models import CashBalance, CashMovement, Position, PositionFill


def position_lock(*, account_id: int, security_id: int) -> Position:
    # ON CONFLICT DO NOTHING: two first fills on a new position both get here safely.
    Position.objects.bulk_create(
        [Position(account_id=account_id, security_id=security_id)], ignore_conflicts=True
    )
    return Position.objects.select_for_update(of=("self",)).get(
        account_id=account_id, security_id=security_id
    )


def cash_lock(*, account_id: int, currency: str) -> CashBalance:
    CashBalance.objects.bulk_create(
        [CashBalance(account_id=account_id, currency=currency)], ignore_conflicts=True
    )
    return CashBalance.objects.select_for_update(of=("self",)).get(
        account_id=account_id, currency=currency
    )


@within_transaction
def cash_move(
    *,
    account_id: int,
    currency: str,
    amount: Decimal,
    settle_date: date,
    kind: str,
    ref: str,
    reason: str,
    as_of: datetime,
    fill: PositionFill | None = None,
) -> CashMovement:
    """Book money on a settlement date; it counts as settled at once if that date has come."""
    balance = cash_lock(account_id=account_id, currency=currency)
    settled_now = settle_date <= as_of.date()
    movement = CashMovement.objects.create(
        account_id=account_id,
        currency=currency,
        amount=amount,
        settle_date=settle_date,
        kind=kind,
        ref=ref,
        reason=reason,
        fill=fill,
        is_settled=settled_now,
        booked_at=as_of,
    )
    balance.projected = F("projected") + amount
    update = ["projected", "updated_at"]
    if settled_now:
        balance.settled = F("settled") + amount
        update.append("settled")
    balance.save(update_fields=update)
    return movement


def rows_lock(model, second: str, keys: set[tuple]) -> dict[tuple, Any]:
    """Get-or-create and lock the Position or CashBalance rows of (account_id, `second`)
    keys, in pk order: one SELECT ... FOR UPDATE when they all exist (the usual case)."""

    def select(wanted: set[tuple]) -> dict[tuple, Any]:
        by_second: dict[Any, list[int]] = {}
        for account_id, other in wanted:
            by_second.setdefault(other, []).append(account_id)
        condition = Q()
        for other, account_ids in by_second.items():
            # One array parameter, not a placeholder per account (any_of): a wide block's
            # thousands of accounts.
            condition |= Q(any_of(model, "account_id", sorted(account_ids)), **{second: other})
        rows = model.objects.select_for_update(of=("self",)).filter(condition).order_by("pk")
        return {(r.account_id, getattr(r, second)): r for r in rows}

    found = select(keys)
    missing = keys - set(found)
    if missing:
        # ON CONFLICT DO NOTHING: two first fills on a new row both get here safely.
        model.objects.bulk_create(
            [model(account_id=a, **{second: o}) for a, o in sorted(missing)],
            ignore_conflicts=True,
        )
        found.update(select(missing))
    return found
