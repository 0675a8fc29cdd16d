"""The helpers that write one step of a use case refuse to run on their own (oms.db.
within_transaction): outside a transaction each of their writes would commit alone."""

from __future__ import annotations

import pytest
from django.db import transaction

from allocation.days import day_book, day_finalise, day_reopen
from fixgateway import outbound
from fixgateway.allocinstr import allocation_instruction_enqueue
from orders import amendments
from orders.fills import orders_fill_apply_many
from orders.transitions import order_event_record, order_transition, orders_transition_bulk
from positions.balances import cash_move

HELPERS = [
    order_transition,
    orders_transition_bulk,
    order_event_record,
    orders_fill_apply_many,
    amendments.order_amend_before_routing,
    amendments.order_amend_request,
    amendments.order_cancel_before_routing,
    amendments.order_cancel_request,
    cash_move,
    day_book,
    day_finalise,
    day_reopen,
    allocation_instruction_enqueue,
    outbound.block_route_enqueue,
    outbound.block_cancel_enqueue,
    outbound.block_replace_enqueue,
    outbound.block_reduce_enqueue,
    outbound.order_cancel_enqueue,
    outbound.order_replace_enqueue,
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("helper", HELPERS, ids=lambda h: h.__name__)
def test_a_step_of_a_use_case_refuses_to_run_outside_a_transaction(helper):
    with pytest.raises(transaction.TransactionManagementError, match=helper.__name__):
        helper()
    # Inside one it is the helper itself that answers (here: about its missing arguments).
    with transaction.atomic(), pytest.raises(TypeError):
        helper()
