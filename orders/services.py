"""Writing orders: the orders app's write surface for the workflows and the other apps. Every
change goes through order_transition (guarded by the lifecycle table, row-locked, audited,
pushed to the blotter after commit).

The work is done by one module per job, named here so callers need one import:
- orders.transitions: locking and lifecycle moves (order_transition, orders_transition_bulk);
- orders.capture: an order request validated, inserted and staged;
- orders.amendments: a PM's amend and cancel of one order, the order's side of them;
- orders.fills: fills booked to orders (orders_fill_apply_many)."""

from __future__ import annotations

from .amendments import (
    AMENDABLE_AT_BROKER,
    AMENDABLE_FIELDS,
    order_amend_before_routing,
    order_amend_prepare,
    order_amend_request,
    order_cancel_before_routing,
    order_cancel_request,
    order_for_actor,
)
from .capture import (
    MAX_INSTRUCTIONS_LENGTH,
    MAX_ORDER_QUANTITY,
    ORDER_INPUT_FIELDS,
    OrderInput,
    OrderLookups,
    account_manageable_by,
    order_data_fingerprint,
    order_input_validate,
    order_insert,
    order_replay,
    order_terms_validate,
    orders_insert_bulk,
    orders_stage,
)
from .fills import OrderFill, order_fill_apply, orders_fill_apply_many
from .transitions import (
    order_event_record,
    order_history_record,
    order_lock,
    order_set_status,
    order_transition,
    orders_lock,
    orders_transition_bulk,
)

__all__ = [
    "AMENDABLE_AT_BROKER",
    "AMENDABLE_FIELDS",
    "MAX_INSTRUCTIONS_LENGTH",
    "MAX_ORDER_QUANTITY",
    "ORDER_INPUT_FIELDS",
    "OrderFill",
    "OrderInput",
    "OrderLookups",
    "account_manageable_by",
    "order_amend_before_routing",
    "order_amend_prepare",
    "order_amend_request",
    "order_cancel_before_routing",
    "order_cancel_request",
    "order_data_fingerprint",
    "order_event_record",
    "order_fill_apply",
    "order_for_actor",
    "order_history_record",
    "order_input_validate",
    "order_insert",
    "order_lock",
    "order_replay",
    "order_set_status",
    "order_terms_validate",
    "order_transition",
    "orders_fill_apply_many",
    "orders_insert_bulk",
    "orders_lock",
    "orders_stage",
    "orders_transition_bulk",
]
