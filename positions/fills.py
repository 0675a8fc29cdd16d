"""One fill at a time into a position and its cash: position_fill_apply books a fill or reverses
an earlier booking, with its ledger row (PositionFill) and cash movement, so positions_reconcile
can recompute everything from the opening balances and the ledger. The set-wise form of the
same write is positions.fills_setwise."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.db import transaction

from oms.errors import Conflict, DomainError
from oms.models import Security
from oms.money import Terms, money_round, notional

from . import broadcast
from .balances import cash_move, position_lock
from .models import CashMovementKind, Position, PositionFill
from .replay import PositionState, position_replay, position_state_apply, signed_quantity


def fill_money(
    *, security: Security | Terms, quantity: Decimal, price: Decimal, settle_date: date, currency
) -> Decimal:
    """The money of a booking nobody priced to the cent (a fill booked directly, not through
    allocation): oms.money.notional of quantity at price, a bond's accrued interest to the
    settlement date included, rounded once (oms.money.money_round). Unsigned."""
    terms = security if isinstance(security, Terms) else Terms.of(security)
    n = notional(terms=terms, quantity=quantity, price=price, on=settle_date)
    return money_round(n.total, currency)


def position_fill_apply(
    *,
    account_id: int,
    security_id: int,
    side: str,
    quantity: Decimal,
    price: Decimal,
    trade_date: date,
    settle_date: date,
    fill_ref: str,
    as_of: datetime,
    net_money: Decimal | None = None,
) -> None:
    """Book a fill (quantity > 0) or reverse an earlier booking of that size at that price
    (quantity < 0) into the account's position and cash. `net_money`, when given, is the cash
    the booking moves (the allocation's money to the cent); otherwise quantity x price.

    Runs inside the caller's transaction (allocation, in the FIX callback); locks the position
    row, then the cash row. Gross money moves projected cash on settle_date.
    """
    fill_check(
        quantity=quantity, price=price, side=side, trade_date=trade_date, settle_date=settle_date
    )
    with transaction.atomic():
        position = position_lock(account_id=account_id, security_id=security_id)
        seq = (
            PositionFill.objects.filter(
                account_id=account_id, security_id=security_id, fill_ref=fill_ref
            ).count()
            + 1
        )
        if quantity > 0:
            fill_book(
                position,
                side,
                quantity,
                price,
                trade_date,
                settle_date,
                fill_ref,
                seq,
                as_of,
                net_money=net_money,
            )
        else:
            fill_reverse(position, side, -quantity, price, fill_ref, seq, as_of)
    broadcast.position_changed_on_commit(account_id)


def fill_check(*, quantity, price, side, trade_date, settle_date) -> None:
    if quantity == 0:
        raise DomainError("A fill needs a non-zero quantity.", code="invalid_quantity")
    if price <= 0:
        raise DomainError("A fill needs a positive price.", code="invalid_price")
    if settle_date < trade_date:
        raise DomainError("Settlement cannot precede the trade.", code="invalid_settle_date")
    signed_quantity(side=side, quantity=Decimal(1))  # validates side


def fill_book(
    position, side, quantity, price, trade_date, settle_date, fill_ref, seq, as_of, net_money=None
):
    security = Security.objects.get(pk=position.security_id)
    currency, terms = security.currency, Terms.of(security)
    delta = signed_quantity(side=side, quantity=quantity)
    if net_money is None:
        money = fill_money(
            security=terms,
            quantity=quantity,
            price=price,
            settle_date=settle_date,
            currency=currency,
        )
        net_money = -money if delta > 0 else money
    fill = PositionFill.objects.create(
        account_id=position.account_id,
        security_id=position.security_id,
        fill_ref=fill_ref,
        seq=seq,
        side=side,
        quantity=quantity,
        price=price,
        trade_date=trade_date,
        settle_date=settle_date,
        currency=currency,
        net_money=net_money,
        booked_at=as_of,
    )
    state = position_state_apply(
        PositionState(
            position.quantity, position.cost_basis, position.realized_pnl, terms.price_factor
        ),
        delta=delta,
        price=price,
    )
    position_save(position, state)
    cash_move(
        account_id=position.account_id,
        currency=currency,
        amount=net_money,
        settle_date=settle_date,
        kind=CashMovementKind.TRADE,
        ref=fill_ref,
        reason=f"{side} {quantity} @ {price}",
        as_of=as_of,
        fill=fill,
    )


def fill_reverse(position, side, quantity, price, fill_ref, seq, as_of, replay=True):
    original = (
        PositionFill.objects.filter(
            account_id=position.account_id,
            security_id=position.security_id,
            fill_ref=fill_ref,
            side=side,
            quantity=quantity,
            price=price,
            reversed_by__isnull=True,
        )
        .order_by("-id")
        .first()
    )
    if original is None:
        raise Conflict(
            f"No booking of {side} {quantity} @ {price} under {fill_ref!r} is left to reverse.",
            code="nothing_to_reverse",
        )
    reversal = PositionFill.objects.create(
        account_id=position.account_id,
        security_id=position.security_id,
        fill_ref=fill_ref,
        seq=seq,
        side=side,
        quantity=-quantity,
        price=price,
        trade_date=original.trade_date,
        settle_date=original.settle_date,
        currency=original.currency,
        net_money=-original.net_money,
        reverses=original,
        booked_at=as_of,
    )
    # Exact undo: the position becomes what it would be had the booking never happened (the
    # caller replays once itself when it reverses many bookings of one position).
    if replay:
        position_save(position, position_replay(position))
    cash_move(
        account_id=position.account_id,
        currency=original.currency,
        amount=-original.net_money,
        settle_date=original.settle_date,
        kind=CashMovementKind.TRADE_REVERSAL,
        ref=fill_ref,
        reason=f"reverses {original.fill_ref}#{original.seq}",
        as_of=as_of,
        fill=reversal,
    )


def position_set(position: Position, state: PositionState) -> None:
    position.quantity = state.quantity
    position.avg_cost = state.avg_cost
    position.cost_basis = state.cost_basis
    position.realized_pnl = state.realized_pnl


def position_save(position: Position, state: PositionState) -> None:
    position_set(position, state)
    position.save(
        update_fields=["quantity", "avg_cost", "cost_basis", "realized_pnl", "updated_at"]
    )
