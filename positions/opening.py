"""Start-of-day positions and cash (opening_balances_load): the opening balance every later
replay starts from; positions.sod reads the custodian's file into it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from audit.services import audit_record
from oms.db import retry_on_conflict
from oms.fields import ZERO
from oms.models import Account, Security
from oms.money import Terms

from . import broadcast
from .balances import cash_lock, position_lock
from .models import CashBalance, CashMovement, Position, PositionFill
from .replay import PositionState


@dataclass(frozen=True)
class OpeningPosition:
    account: Account
    security: Security
    quantity: Decimal
    avg_cost: Decimal


@dataclass(frozen=True)
class OpeningCash:
    account: Account
    currency: str
    amount: Decimal


def _last_fill_id() -> int:
    return PositionFill.objects.order_by("-id").values_list("id", flat=True).first() or 0


@retry_on_conflict
def opening_balances_load(
    *,
    positions: list[OpeningPosition],
    cash: list[OpeningCash],
    replace: bool = False,
    actor=None,
    source: str = "",
) -> tuple[int, int]:
    """Set start-of-day positions and cash. Without `replace`, existing rows are left alone
    (so loading the demo twice changes nothing). With it, the loaded figures become the new
    opening balance: bookings made before the load count as included in it (the custodian's
    file already reflects them), projected cash keeps the movements still to settle."""
    created = 0
    last_fill = _last_fill_id()
    for item in sorted(positions, key=lambda p: (p.account.pk, p.security.pk)):
        state = PositionState.opening(
            quantity=item.quantity,
            avg_cost=item.avg_cost,
            factor=Terms.of(item.security).price_factor,
        )
        values = {
            "quantity": item.quantity,
            "avg_cost": state.avg_cost,
            "cost_basis": state.cost_basis,
            "realized_pnl": ZERO,
            "opening_quantity": item.quantity,
            "opening_avg_cost": item.avg_cost,
            "opening_ledger_id": last_fill,
        }
        if replace:
            position = position_lock(account_id=item.account.pk, security_id=item.security.pk)
            for name, value in values.items():
                setattr(position, name, value)
            position.save()
        else:
            _, was_created = Position.objects.get_or_create(
                account=item.account, security=item.security, defaults=values
            )
            created += was_created
    cash_created = 0
    for item in sorted(cash, key=lambda c: (c.account.pk, c.currency)):
        if replace:
            balance = cash_lock(account_id=item.account.pk, currency=item.currency)
            pending = sum(
                (
                    m.amount
                    for m in CashMovement.objects.filter(
                        account_id=item.account.pk, currency=item.currency, is_settled=False
                    )
                ),
                ZERO,
            )
            # The custodian's settled figure already holds every settled movement; movements
            # still to settle stay on the ladder on top of it.
            CashMovement.objects.filter(
                account_id=item.account.pk, currency=item.currency, is_settled=True
            ).update(in_opening=True)
            balance.settled = item.amount
            balance.opening_settled = item.amount
            balance.projected = item.amount + pending
            balance.save()
        else:
            _, was_created = CashBalance.objects.get_or_create(
                account=item.account,
                currency=item.currency,
                defaults={
                    "settled": item.amount,
                    "projected": item.amount,
                    "opening_settled": item.amount,
                },
            )
            cash_created += was_created
    if actor is not None:
        audit_record(
            actor=actor,
            action="positions.opening_load",
            object_type="positions.opening",
            object_repr=source or "opening balances",
            after={
                "positions": len(positions),
                "cash": len(cash),
                "replace": replace,
                "source": source,
            },
        )
    for account_id in {p.account.pk for p in positions} | {c.account.pk for c in cash}:
        broadcast.position_changed_on_commit(account_id)
    return created, cash_created
