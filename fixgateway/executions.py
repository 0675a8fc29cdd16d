"""Applying one execution report (35=8) exactly once: the execution recorded, the block's
figures, its orders' statuses, and the booking ledger told (allocation.services). A workflow:
it spans the gateway, orders and allocation. Locks: the block first, then its FixOrder, then
(inside the allocation and order services) its orders in pk order.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Case, Exists, F, IntegerField, OuterRef, Subquery, Sum, Value, When

from allocation import services as allocation
from oms.db import in_transaction
from oms.errors import DomainError
from oms.money import average_price
from orders.lifecycle import AT_BROKER, OrderStatus, can_transition
from orders.models import Block, Order
from orders.services import order_transition, orders_lock

from .models import Broker, Execution, FixOrder, OutboxMessage
from .outbound import BLOCK_FINAL, BS, ZERO, orders_move
from .reports import TRADE_TYPES, ApplyResult, InboundReport, quarantine_record
from .sessions import broker_status_requests_learned, unconfirmed_clear


def find_fix_order_id(*, broker: Broker, report: InboundReport) -> int | None:
    for cl in (report.cl_ord_id, report.orig_cl_ord_id, report.business_ref_id):
        if cl:
            found = (
                OutboxMessage.objects.filter(broker=broker, cl_ord_id=cl)
                .values_list("fix_order_id", flat=True)
                .first()
            )
            if found:
                return found
    if report.order_id:
        return (
            FixOrder.objects.filter(broker=broker, broker_order_id=report.order_id)
            .values_list("pk", flat=True)
            .first()
        )
    return None


def _report_fix_order_lock(*, broker: Broker, report: InboundReport) -> FixOrder | None:
    """The FixOrder a report is about (found as find_fix_order_id finds it), locked after
    its block as everywhere else, in two statements: the block is found and locked in one
    (with its security at hand), then its FixOrder."""
    candidates = [c for c in (report.cl_ord_id, report.orig_cl_ord_id, report.business_ref_id) if c]
    blocks = Block.objects.select_for_update(of=("self",)).select_related("security")
    block = None
    if candidates:
        first_named = Case(
            *(When(cl_ord_id=c, then=Value(i)) for i, c in enumerate(candidates)),
            output_field=IntegerField(),
        )
        found = (
            OutboxMessage.objects.filter(broker=broker, cl_ord_id__in=candidates)
            .order_by(first_named)
            .values("fix_order__block_id")[:1]
        )
        block = blocks.filter(pk=Subquery(found)).first()
    if block is None and report.order_id:
        found = (
            FixOrder.objects.filter(broker=broker, broker_order_id=report.order_id)
            .order_by("pk")
            .values("block_id")[:1]
        )
        block = blocks.filter(pk=Subquery(found)).first()
    if block is None:
        return None
    # Whether the ExecID was seen comes with the FixOrder: that statement starts after the
    # block is locked (so it sees every report applied before ours), and never waits itself.
    fix_order = (
        FixOrder.objects.select_for_update()
        .annotate(
            exec_id_seen=Exists(
                Execution.objects.filter(
                    broker=broker, fix_order=OuterRef("pk"), exec_id=report.exec_id
                )
            )
        )
        .get(block=block)
    )
    fix_order.block = block
    return fix_order


def execution_ref(broker: Broker, fix_order: FixOrder, exec_id: str) -> str:
    return f"{broker.code}:{fix_order.block_id}:{exec_id}"


def block_status_by_fill(block: Block) -> str:
    if block.cum_qty >= block.quantity:
        return BS.FILLED
    return BS.PARTIALLY_FILLED if block.cum_qty > 0 else BS.WORKING


def _order_status_by_fill(order: Order) -> str:
    if order.cum_qty >= order.quantity:
        return OrderStatus.FILLED
    return OrderStatus.PARTIALLY_FILLED if order.cum_qty > 0 else OrderStatus.WORKING


def ledger_totals(fix_orders: list[FixOrder]) -> dict[int, tuple[Decimal, Decimal]]:
    """Each FixOrder's cum quantity and value (quantity x price) from the ledger of applied
    trades and corrections: what the block's figures follow, exact after busts and
    corrections (FIX Appendix D), in one statement."""
    rows = (
        Execution.objects.filter(
            fix_order__in=fix_orders,
            state=Execution.State.APPLIED,
            exec_type__in=[*TRADE_TYPES, "G"],
        )
        .values("fix_order_id")
        .annotate(cum=Sum("last_qty"), value=Sum(F("last_qty") * F("last_px")))
    )
    return {r["fix_order_id"]: (r["cum"] or ZERO, r["value"] or ZERO) for r in rows}


def block_figures_set(block: Block, cum: Decimal, value: Decimal) -> None:
    # From the ledger's totals, never from the last average: it cannot drift through rounding.
    block.cum_qty = cum
    block.avg_price = average_price(value, cum)


def _block_recompute(block: Block, fix_order: FixOrder) -> None:
    block_figures_set(block, *ledger_totals([fix_order]).get(fix_order.pk, (ZERO, ZERO)))


def set_block_status(block: Block, status: str) -> None:
    block.status = status
    block.save(update_fields=["status", "cum_qty", "avg_price", "quantity", "updated_at"])


def _fill_apply(
    *, broker: Broker, fix_order: FixOrder, block: Block, report: InboundReport, as_of: datetime
) -> ApplyResult | None:
    qty, px = report.last_qty, report.last_px
    if qty <= 0 or px <= 0:
        return ApplyResult("quarantined", detail="trade without a positive LastQty/LastPx")
    if block.cum_qty + qty > block.quantity:
        return ApplyResult(
            "quarantined",
            detail=f"overfill: block {block.pk} has {block.cum_qty} of {block.quantity}, "
            f"report adds {qty}",
        )
    allocation.street_fills_record(
        fills=[
            allocation.BlockFill(
                block=block,
                execution_ref=execution_ref(broker, fix_order, report.exec_id),
                quantity=qty,
                price=px,
                trade_date=report.trade_date or as_of.date(),
            )
        ],
        as_of=as_of,
    )
    allocation.block_book(block=block, as_of=as_of)
    return None


def _original_execution(fix_order: FixOrder, exec_ref_id: str) -> Execution | None:
    target = Execution.objects.filter(fix_order=fix_order, exec_id=exec_ref_id).first()
    # A correction of a correction may name the first trade: follow the chain to the live one.
    while target is not None and target.state == Execution.State.CORRECTED:
        target = Execution.objects.filter(
            fix_order=fix_order, exec_ref_id=target.exec_id, exec_type="G"
        ).first()
    if target is None or target.state != Execution.State.APPLIED:
        return None
    if target.exec_type not in TRADE_TYPES and target.exec_type != "G":
        return None
    return target


def _reverse(
    *, broker: Broker, fix_order: FixOrder, block: Block, original: Execution, as_of: datetime
) -> date | None:
    return allocation.street_fill_bust(
        block=block,
        execution_ref=execution_ref(broker, fix_order, original.exec_id),
        as_of=as_of,
        actor=None,
    )


def _orders_of(block: Block) -> list[Order]:
    ids = list(block.orders.values_list("pk", flat=True))
    return orders_lock(order_ids=ids)


def orders_settle_pending(
    block: Block, as_of: datetime, kind: str, details: dict[str, Any] | None = None
) -> None:
    """Orders waiting on a cancel/replace the broker refused go back to where their fills
    put them."""
    for order in _orders_of(block):
        if order.status in (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE):
            target = _order_status_by_fill(order)
            if can_transition(order.status, target):
                order_transition(
                    order=order, to_status=target, as_of=as_of, kind=kind, details=details
                )


def status_report_apply(
    *, fix_order: FixOrder, block: Block, report: InboundReport, as_of: datetime
) -> None:
    et = report.exec_type
    if report.order_id and not fix_order.broker_order_id:
        fix_order.broker_order_id = report.order_id
    if et in ("4", "5", "8"):
        # The orders are about to change: what the block executed before is theirs as they
        # were (a wide block's executions may still wait for the booker).
        allocation.block_book_due(block=block, as_of=as_of)
    if et == "0":  # New
        if block.status == BS.ROUTED:
            set_block_status(block, BS.WORKING)
        orders_move(
            orders=_orders_of(block),
            to_status=OrderStatus.WORKING,
            as_of=as_of,
            kind="acknowledged",
        )
    elif et == "4":  # Cancelled (solicited or not)
        set_block_status(block, BS.CANCELLED if block.cum_qty < block.quantity else BS.FILLED)
        fix_order.pending_kind = fix_order.pending_cl_ord_id = ""
        fix_order.pending_values = {}
        for order in _orders_of(block):
            if order.status in AT_BROKER and can_transition(order.status, OrderStatus.CANCELLED):
                order_transition(
                    order=order,
                    to_status=OrderStatus.CANCELLED,
                    as_of=as_of,
                    kind="cancelled",
                    details={"exec_id": report.exec_id, "text": report.text},
                    extra_fields={"leaves_qty": ZERO},
                )
        allocation.allocation_plan_fix(block=block, actor=None, as_of=as_of)
    elif et == "5":  # Replaced
        _replaced_apply(fix_order=fix_order, block=block, report=report, as_of=as_of)
    elif et == "8":  # Rejected
        set_block_status(block, BS.REJECTED if block.cum_qty == 0 else BS.CANCELLED)
        reject = report.extra.get("reject") or reject_info(report, what="NewOrderSingle")
        fix_order.last_reject = reject
        for order in _orders_of(block):
            target = (
                OrderStatus.REJECTED
                if can_transition(order.status, OrderStatus.REJECTED)
                else OrderStatus.CANCELLED
            )
            if order.status in AT_BROKER and can_transition(order.status, target):
                order_transition(
                    order=order,
                    to_status=target,
                    as_of=as_of,
                    kind="rejected",
                    details={"text": reject["text"], "reject": reject},
                    extra_fields={"leaves_qty": ZERO},
                )
    elif et in ("C", "3"):  # Expired, Done for day
        block_target, order_target = (
            (BS.EXPIRED, OrderStatus.EXPIRED)
            if et == "C"
            else (BS.DONE_FOR_DAY, OrderStatus.DONE_FOR_DAY)
        )
        if block.cum_qty < block.quantity:
            set_block_status(block, block_target)
        orders_move(
            orders=[o for o in _orders_of(block) if o.cum_qty < o.quantity],
            to_status=order_target,
            as_of=as_of,
            kind=order_target.lower(),
        )
    # A (pending new), 6 (pending cancel), E (pending replace) and D (restated) change
    # nothing we keep: the order already waits, and a restatement is recorded in the ledger.
    fix_order.save()


def _replaced_apply(
    *, fix_order: FixOrder, block: Block, report: InboundReport, as_of: datetime
) -> None:
    values = fix_order.pending_values or {}
    if fix_order.pending_kind == OutboxMessage.Kind.REPLACE:
        fix_order.cl_ord_id = fix_order.pending_cl_ord_id or report.cl_ord_id
    elif report.cl_ord_id:
        fix_order.cl_ord_id = report.cl_ord_id
    if values.get("quantity"):
        block.quantity = Decimal(values["quantity"])
    if values.get("limit_price"):
        block.limit_price = Decimal(values["limit_price"])
    if values.get("time_in_force"):
        block.time_in_force = values["time_in_force"]
    block.save(update_fields=["quantity", "limit_price", "time_in_force", "updated_at"])
    set_block_status(block, block_status_by_fill(block))
    cancelled = set(values.get("cancel_order_ids") or [])
    updates = values.get("order_updates") or {}
    for order in _orders_of(block):
        if order.pk in cancelled and can_transition(order.status, OrderStatus.CANCELLED):
            order_transition(
                order=order,
                to_status=OrderStatus.CANCELLED,
                as_of=as_of,
                kind="cancelled",
                details={"via_block_replace": report.exec_id},
                extra_fields={"leaves_qty": ZERO},
            )
        elif order.status == OrderStatus.PENDING_REPLACE:
            extra: dict[str, Any] = {}
            change = updates.get(str(order.pk)) or {}
            if change.get("quantity"):
                extra["quantity"] = Decimal(change["quantity"])
                extra["leaves_qty"] = extra["quantity"] - order.cum_qty
            if change.get("limit_price"):
                extra["limit_price"] = Decimal(change["limit_price"])
            if values.get("time_in_force"):
                extra["time_in_force"] = values["time_in_force"]
            quantity = extra.get("quantity", order.quantity)
            # The order's own terms may not have changed (the block was amended): either way
            # it shows its true quantity, cum and leaves.
            extra.setdefault("leaves_qty", quantity - order.cum_qty)
            target = (
                OrderStatus.FILLED
                if order.cum_qty >= quantity
                else OrderStatus.PARTIALLY_FILLED
                if order.cum_qty > 0
                else OrderStatus.REPLACED
                if change
                else OrderStatus.WORKING
            )
            order_transition(
                order=order,
                to_status=target,
                as_of=as_of,
                kind="replaced",
                details={"exec_id": report.exec_id},
                extra_fields=extra,
            )
    fix_order.pending_kind = fix_order.pending_cl_ord_id = ""
    fix_order.pending_values = {}
    # The broker agreed: the allocation follows the orders' new quantities from now on.
    allocation.allocation_plan_fix(block=block, actor=None, as_of=as_of)


def _reconcile_status(
    *, fix_order: FixOrder, block: Block, report: InboundReport, as_of: datetime
) -> str:
    """An OrderStatusRequest's answer: the broker's cum must equal ours. Anything else is
    for a human: fills we never received cannot be invented from a cum and an average."""
    if report.cum_qty + fix_order.carried_cum_qty != block.cum_qty:
        carried = f" (+{fix_order.carried_cum_qty} before a resend)" * bool(
            fix_order.carried_cum_qty
        )
        return f"broker reports cum {report.cum_qty}{carried}, we have {block.cum_qty}"
    terminal = {"4": "4", "8": "8", "C": "C", "3": "3"}
    if report.ord_status in terminal and block.status not in BLOCK_FINAL:
        status_report_apply(
            fix_order=fix_order,
            block=block,
            report=InboundReport(
                msg_type="8",
                exec_type=terminal[report.ord_status],
                exec_id=report.exec_id,
                text="reconciled on logon",
            ),
            as_of=as_of,
        )
    return ""


def execution_of(
    broker: Broker, fix_order: FixOrder, report: InboundReport, as_of: datetime
) -> Execution:
    return Execution(
        broker=broker,
        fix_order=fix_order,
        exec_id=report.exec_id,
        exec_type=report.exec_type,
        ord_status=report.ord_status,
        cl_ord_id=report.cl_ord_id,
        exec_ref_id=report.exec_ref_id,
        last_qty=report.last_qty,
        last_px=report.last_px,
        cum_qty=report.cum_qty,
        avg_px=report.avg_px,
        leaves_qty=report.leaves_qty,
        trade_date=report.trade_date,
        content_hash=report.content_hash(),
        raw=report.raw,
        received_at=as_of,
    )


def block_status_after_trade(block: Block) -> str:
    """Where a trade, bust or correction leaves the block: a fill does not undo a pending or
    final state unless it completes the block."""
    if block.status in (BS.PENDING_CANCEL, BS.PENDING_REPLACE, BS.CANCELLED, BS.EXPIRED):
        return BS.FILLED if block.cum_qty >= block.quantity else block.status
    return block_status_by_fill(block)


def execution_report_apply(
    *, broker: Broker, report: InboundReport, as_of: datetime
) -> ApplyResult:
    """Apply one ExecutionReport exactly once, in one transaction of its own."""
    return in_transaction(
        lambda: execution_report_apply_nested(broker=broker, report=report, as_of=as_of),
        durable=True,
    )


def execution_report_apply_nested(
    *, broker: Broker, report: InboundReport, as_of: datetime
) -> ApplyResult:
    """Inside the caller's transaction: an ExecID seen before changes nothing, the same
    ExecID with other content is quarantined."""
    fix_order = _report_fix_order_lock(broker=broker, report=report)
    if fix_order is None:
        quarantine_record(
            broker=broker,
            reason="unknown_cl_ord_id",
            report=report,
            detail=f"no order known by ClOrdID {report.cl_ord_id!r}",
            as_of=as_of,
        )
        return ApplyResult("unknown", dont_know=report.exec_type in TRADE_TYPES | {"G"})
    block = fix_order.block
    if report.exec_type == "I":
        broker_status_requests_learned(
            broker=broker, status_requests=Broker.StatusRequests.ANSWERED, as_of=as_of
        )
        mismatch = _reconcile_status(fix_order=fix_order, block=block, report=report, as_of=as_of)
        if not mismatch and fix_order.unconfirmed_since is not None:
            unconfirmed_clear(
                fix_order=fix_order,
                as_of=as_of,
                note=f"The broker confirmed it (status report {report.exec_id}).",
            )
        if mismatch:
            quarantine_record(
                broker=broker,
                reason="reconcile_mismatch",
                report=report,
                detail=mismatch,
                as_of=as_of,
            )
            return ApplyResult("quarantined", detail=mismatch)
        return ApplyResult("applied")
    existing = (
        Execution.objects.filter(broker=broker, fix_order=fix_order, exec_id=report.exec_id).first()
        if fix_order.exec_id_seen
        else None
    )
    digest = report.content_hash()
    if existing is not None:
        if existing.content_hash == digest:
            return ApplyResult("duplicate")
        quarantine_record(
            broker=broker,
            reason="exec_id_conflict",
            report=report,
            detail=f"ExecID {report.exec_id} seen before with different content",
            as_of=as_of,
        )
        return ApplyResult("quarantined", detail="exec_id_conflict")
    execution = execution_of(broker, fix_order, report, as_of)
    problem: ApplyResult | None = None
    try:
        with transaction.atomic():
            problem = _apply_kind(
                broker=broker,
                fix_order=fix_order,
                block=block,
                report=report,
                execution=execution,
                as_of=as_of,
            )
            if problem is not None:
                raise _Refused
    except _Refused:
        pass
    except DomainError as exc:
        problem = ApplyResult("quarantined", detail=f"{exc.code}: {exc.message}")
    if problem is not None:
        # The report is kept (so its replay is recognised) but changes nothing.
        block.refresh_from_db()
        execution.state = Execution.State.QUARANTINED
        execution.save()
        reason = problem.detail.split(":", 1)[0][:32] or "refused"
        quarantine_record(
            broker=broker, reason=reason, report=report, detail=problem.detail, as_of=as_of
        )
        return problem
    return ApplyResult("applied")


class _Refused(Exception):
    """Rolls back the savepoint of a report the gateway will not apply."""


def _apply_kind(
    *,
    broker: Broker,
    fix_order: FixOrder,
    block: Block,
    report: InboundReport,
    execution: Execution,
    as_of: datetime,
) -> ApplyResult | None:
    et = report.exec_type
    if et in TRADE_TYPES:
        problem = _fill_apply(
            broker=broker, fix_order=fix_order, block=block, report=report, as_of=as_of
        )
        if problem:
            return problem
        execution.save()
    elif et in ("H", "G"):
        original = _original_execution(fix_order, report.exec_ref_id)
        if original is None:
            return ApplyResult(
                "quarantined",
                detail=f"unknown_exec_ref: no applied trade {report.exec_ref_id!r} to "
                f"{'bust' if et == 'H' else 'correct'}",
            )
        busted_on = _reverse(
            broker=broker, fix_order=fix_order, block=block, original=original, as_of=as_of
        )
        original.state = Execution.State.BUSTED if et == "H" else Execution.State.CORRECTED
        original.save(update_fields=["state"])
        if et == "H":
            allocation.block_book(block=block, as_of=as_of)
        else:  # the corrected trade is booked with the bust, in one pass
            # A correction without a TradeDate corrects the original trade's day.
            report.trade_date = report.trade_date or busted_on
            block.cum_qty -= original.last_qty
            problem = _fill_apply(
                broker=broker, fix_order=fix_order, block=block, report=report, as_of=as_of
            )
            if problem:
                return problem
        execution.save()
    else:
        execution.save()
        status_report_apply(fix_order=fix_order, block=block, report=report, as_of=as_of)
        return None
    # Trades, busts and corrections: the block's figures follow the ledger.
    _block_recompute(block, fix_order)
    set_block_status(block, block_status_after_trade(block))
    if report.order_id and not fix_order.broker_order_id:
        fix_order.broker_order_id = report.order_id
        fix_order.save(update_fields=["broker_order_id"])
    return None


def reject_info(report: InboundReport, *, what: str) -> dict[str, Any]:
    """A refusal as the trader reads it (kept on the FixOrder and the order events): which
    message, which tag by number and field name, why, and the broker's own words."""
    source = {
        "3": "Session reject",
        "j": "Business reject",
        "9": "Cancel reject",
        "8": "Order reject",
    }.get(report.msg_type, "Reject")
    parts = [f"{source} of the {what}"]
    if report.ref_tag_label:
        parts.append(f"tag {report.ref_tag_label}")
    if report.reject_reason_text:
        parts.append(report.reject_reason_text)
    if report.text and report.text != report.reject_reason_text:
        parts.append(report.text)
    info: dict[str, Any] = {"message": what, "source": source, "text": ": ".join(parts)}
    if report.ref_tag:
        info["tag"] = report.ref_tag_label or str(report.ref_tag)
        info["tag_number"] = report.ref_tag
    if report.reject_reason:
        info["reason"] = report.reject_reason
    if report.ref_seq_num:
        info["ref_seq_num"] = report.ref_seq_num
    if report.cl_ord_id:
        info["cl_ord_id"] = report.cl_ord_id
    return info
