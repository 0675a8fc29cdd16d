"""What a booking of a fill is checked and priced by (fill_check, fill_money) and how a position
takes its new state (position_set); positions.fills_setwise writes the bookings, with their
ledger rows (PositionFill) and cash movements, so positions_reconcile can recompute everything
from the opening balances and the ledger."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from oms.errors import DomainError
from oms.models import Security
from oms.money import Terms, money_round, notional

from .models import Position
from .replay import PositionState, signed_quantity


def fill_money(
    *, security: Security | Terms, quantity: Decimal, price: Decimal, settle_date: date, currency
) -> Decimal:
    """The money of a booking nobody priced to the cent (a fill booked directly, not through
    allocation): oms.money.notional of quantity at price, a bond's accrued interest to the
    settlement date included, rounded once (oms.money.money_round). Unsigned."""
    terms = security if isinstance(security, Terms) else Terms.of(security)
    n = notional(terms=terms, quantity=quantity, price=price, on=settle_date)
    return money_round(n.total, currency)


def fill_check(*, quantity, price, side, trade_date, settle_date) -> None:
    if quantity == 0:
        raise DomainError("A fill needs a non-zero quantity.", code="invalid_quantity")
    if price <= 0:
        raise DomainError("A fill needs a positive price.", code="invalid_price")
    if settle_date < trade_date:
        raise DomainError("Settlement cannot precede the trade.", code="invalid_settle_date")
    signed_quantity(side=side, quantity=Decimal(1))  # validates side


def position_set(position: Position, state: PositionState) -> None:
    position.quantity = state.quantity
    position.avg_cost = state.avg_cost
    position.cost_basis = state.cost_basis
    position.realized_pnl = state.realized_pnl
