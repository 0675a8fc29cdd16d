"""Cash other than fills, and FX rates: commission, fees and corrections (cash_adjust, and
cash_adjust_many for a block's accounts), each with its ledger movement; settling the movements
whose date has come (cash_settle_due); FX rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import bulk_insert
from oms.bulk_rows import rows_update
from oms.errors import DomainError
from oms.fields import ZERO

from . import broadcast
from .balances import cash_lock, cash_move, rows_lock
from .models import CashBalance, CashMovement, CashMovementKind, FxRate


def cash_adjust(
    *,
    account_id: int,
    currency: str,
    amount: Decimal,
    settle_date: date,
    reason: str,
    ref: str,
    as_of: datetime,
) -> None:
    """Book commission, fees or a correction (signed: negative takes cash out)."""
    if amount == 0:
        return
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise DomainError(f"{currency!r} is not an ISO currency code.", code="invalid_currency")
    with transaction.atomic():
        cash_move(
            account_id=account_id,
            currency=currency,
            amount=amount,
            settle_date=settle_date,
            kind=CashMovementKind.ADJUSTMENT,
            ref=ref,
            reason=reason,
            as_of=as_of,
        )
    broadcast.position_changed_on_commit(account_id)


@dataclass(frozen=True)
class CashAdjustment:
    """One cash_adjust for cash_adjust_many."""

    account_id: int
    currency: str
    amount: Decimal
    settle_date: date
    reason: str
    ref: str


def cash_adjust_many(*, adjustments: list[CashAdjustment], as_of: datetime) -> None:
    """cash_adjust for several adjustments (a block's commission and fees, one per account),
    with the same movements and balances as calling it once for each in this order: the
    balances locked in one statement (pk order), the movements written with one COPY, the
    balances with one UPDATE. Runs inside the caller's transaction."""
    adjustments = [a for a in adjustments if a.amount != 0]
    for a in adjustments:
        if not (len(a.currency) == 3 and a.currency.isalpha() and a.currency.isupper()):
            raise DomainError(
                f"{a.currency!r} is not an ISO currency code.", code="invalid_currency"
            )
    if not adjustments:
        return
    balances = rows_lock(CashBalance, "currency", {(a.account_id, a.currency) for a in adjustments})
    settled_by = as_of.date()
    now = timezone.now()
    movements = []
    for a in adjustments:
        settled_now = a.settle_date <= settled_by
        movements.append(
            CashMovement(
                account_id=a.account_id,
                currency=a.currency,
                amount=a.amount,
                settle_date=a.settle_date,
                kind=CashMovementKind.ADJUSTMENT,
                ref=a.ref,
                reason=a.reason,
                is_settled=settled_now,
                booked_at=as_of,
            )
        )
        balance = balances[(a.account_id, a.currency)]
        balance.projected += a.amount
        if settled_now:
            balance.settled += a.amount
        balance.updated_at = now
    bulk_insert(movements)
    rows_update(list(balances.values()), ["projected", "settled", "updated_at"])
    for account_id in sorted({a.account_id for a in adjustments}):
        broadcast.position_changed_on_commit(account_id)


def cash_settle_due(*, as_of: datetime) -> int:
    """Move every booked movement whose settlement date has come into settled cash.
    Run at the start of each day (positions_settle); returns how many movements settled."""
    settled = 0
    with transaction.atomic():
        due = (
            CashMovement.objects.filter(is_settled=False, settle_date__lte=as_of.date())
            .values_list("account_id", "currency")
            .distinct()
        )
        for account_id, currency in sorted(set(due)):
            balance = cash_lock(account_id=account_id, currency=currency)
            rows = CashMovement.objects.select_for_update().filter(
                account_id=account_id,
                currency=currency,
                is_settled=False,
                settle_date__lte=as_of.date(),
            )
            total = sum((m.amount for m in rows), ZERO)
            count = rows.update(is_settled=True)
            balance.settled = F("settled") + total
            balance.save(update_fields=["settled", "updated_at"])
            settled += count
            broadcast.position_changed_on_commit(account_id)
    return settled


def fx_rate_set(*, base: str, quote: str, rate: Decimal, as_of_date: date) -> FxRate:
    if rate <= 0:
        raise DomainError("An FX rate must be positive.", code="invalid_rate")
    obj, _ = FxRate.objects.update_or_create(
        base=base, quote=quote, as_of_date=as_of_date, defaults={"rate": rate}
    )
    return obj
