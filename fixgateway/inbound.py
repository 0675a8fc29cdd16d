"""The applier's entry: a batch of inbound reports applied in arrival order in one
transaction (runs of plain trades set-wise, the rest one by one), with the inbound mark.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from allocation import services as allocation
from audit.services import bulk_insert
from oms.bulk_rows import rows_update
from oms.db import in_transaction
from oms.errors import DomainError
from orders.models import Block

from .executions import (
    block_figures_set,
    block_status_after_trade,
    execution_of,
    execution_ref,
    execution_report_apply_nested,
    ledger_totals,
)
from .models import Broker, Execution, FixOrder, OutboxMessage, SessionState
from .monitor import fix_messages_received
from .outbound import ZERO
from .rejects import cancel_reject_apply_nested, message_reject_apply_nested
from .reports import TRADE_TYPES, ApplyResult, InboundReport, quarantine_failure, quarantine_record
from .selectors import InboundMark

log = logging.getLogger("fixgateway")


_APPLIERS = {
    "8": execution_report_apply_nested,
    "9": cancel_reject_apply_nested,
    "j": message_reject_apply_nested,
    "3": message_reject_apply_nested,
}


def _inbound_one(*, broker: Broker, report: InboundReport, as_of: datetime) -> ApplyResult:
    if report.extra.get("parse_error"):
        # Past the data dictionary but not readable as a report (a bad date, say): kept, raw.
        quarantine_record(
            broker=broker,
            reason="malformed",
            report=report,
            detail=report.extra["parse_error"],
            as_of=as_of,
        )
        return ApplyResult("quarantined", detail="malformed")
    apply = _APPLIERS.get(report.msg_type)
    if apply is None:
        quarantine_record(broker=broker, reason="unexpected_message", report=report, as_of=as_of)
        return ApplyResult("quarantined", detail="unexpected_message")
    return apply(broker=broker, report=report, as_of=as_of)


def _is_plain_trade(report: InboundReport) -> bool:
    return report.msg_type == "8" and report.exec_type in TRADE_TYPES and bool(report.cl_ord_id)


def _trade_run_apply(*, broker: Broker, reports: list[InboundReport], as_of: datetime) -> int:
    """Apply set-wise the longest leading part of a run of trade reports that needs no
    judgement: a known ClOrdID, an ExecID not seen before, a positive quantity and price, no
    overfill. Same rows as execution_report_apply_nested one by one, a fixed number of statements
    for the whole run. Returns how many it applied; the caller applies the next one alone.
    Raises (a DomainError) when the allocation needs judgement; the caller's savepoint then
    undoes everything and the run goes one by one."""
    found = dict(
        OutboxMessage.objects.filter(
            broker=broker, cl_ord_id__in={r.cl_ord_id for r in reports}
        ).values_list("cl_ord_id", "fix_order__block_id")
    )
    run: list[InboundReport] = []
    for report in reports:
        if report.cl_ord_id not in found:
            break
        run.append(report)
    if not run:
        return 0
    block_ids = {found[r.cl_ord_id] for r in run}
    blocks = {
        b.pk: b
        for b in Block.objects.select_for_update(of=("self",))
        .select_related("security")
        .filter(pk__in=block_ids)
        .order_by("pk")
    }
    fix_orders = {
        fo.block_id: fo
        for fo in FixOrder.objects.select_for_update().filter(block_id__in=block_ids).order_by("pk")
    }
    seen = set(
        Execution.objects.filter(
            broker=broker,
            fix_order__in=list(fix_orders.values()),
            exec_id__in={r.exec_id for r in run},
        ).values_list("fix_order_id", "exec_id")
    )
    ledger = ledger_totals(list(fix_orders.values()))
    executions: list[Execution] = []
    fills = []
    named: dict[int, FixOrder] = {}
    for report in run:
        block = blocks[found[report.cl_ord_id]]
        fix_order = fix_orders[block.pk]
        qty, px = report.last_qty, report.last_px
        key = (fix_order.pk, report.exec_id)
        if key in seen or qty <= 0 or px <= 0 or block.cum_qty + qty > block.quantity:
            break  # a duplicate, a conflict or a refusal: judged alone, by the caller
        seen.add(key)
        fills.append(
            allocation.BlockFill(
                block=block,
                execution_ref=execution_ref(broker, fix_order, report.exec_id),
                quantity=qty,
                price=px,
                trade_date=report.trade_date or as_of.date(),
            )
        )
        executions.append(execution_of(broker, fix_order, report, as_of))
        cum, value = ledger.get(fix_order.pk, (ZERO, ZERO))
        cum, value = cum + qty, value + qty * px
        ledger[fix_order.pk] = (cum, value)
        block_figures_set(block, cum, value)
        block.status = block_status_after_trade(block)
        if report.order_id and not fix_order.broker_order_id:
            fix_order.broker_order_id = report.order_id
            named[fix_order.pk] = fix_order
    if not fills:
        return 0
    # Every fill of the run is recorded first; each block is then booked once, whatever the
    # number of its fills in the run (the account-level work does not grow with the fills),
    # and a wide block by the booker, off this path (its width does not weigh on reports).
    changed_blocks = allocation.street_fills_record(fills=fills, as_of=as_of)
    allocation.blocks_book_with_reports(block_ids=changed_blocks, as_of=as_of)
    bulk_insert(executions)
    now = timezone.now()
    changed = list({f.block.pk: f.block for f in fills}.values())
    for block in changed:
        block.updated_at = now
    rows_update(changed, ["status", "cum_qty", "avg_price", "updated_at"])
    rows_update(list(named.values()), ["broker_order_id"])
    return len(fills)


def _inbound_guarded(*, broker: Broker, report: InboundReport, as_of: datetime) -> ApplyResult:
    try:
        with transaction.atomic():
            return _inbound_one(broker=broker, report=report, as_of=as_of)
    except (InterfaceError, OperationalError):
        raise
    except Exception as exc:
        log.exception("FIX message could not be applied; quarantined")
        quarantine_failure(broker=broker, report=report, exc=exc, as_of=as_of)
        return ApplyResult("quarantined", detail="exception")


def inbound_batch_apply(
    *,
    broker: Broker,
    reports: list[InboundReport],
    as_of: datetime,
    mark: InboundMark | None = None,
) -> list[ApplyResult]:
    """Apply inbound messages in arrival order in one transaction, and record `mark` with
    them: what is committed and how far the inbound numbering is covered move together, so a
    crash before commit loses nothing (start-up winds the session back to the mark and the
    broker resends). Runs of plain trade reports are applied set-wise; anything else, one by
    one. A message that fails unexpectedly is quarantined with its raw text and the others
    still apply; an unreachable database fails the whole batch, to be retried. A deadlock
    with another writer runs the batch again (oms.db.in_transaction); only when that keeps
    failing does the error go up to the applier, which holds the batch and tries later."""
    return in_transaction(
        lambda: _inbound_batch(broker=broker, reports=reports, as_of=as_of, mark=mark),
        durable=True,
    )


def _inbound_batch(
    *,
    broker: Broker,
    reports: list[InboundReport],
    as_of: datetime,
    mark: InboundMark | None,
) -> list[ApplyResult]:
    results: list[ApplyResult] = []
    i = 0
    while i < len(reports):
        end = i
        while end < len(reports) and _is_plain_trade(reports[end]):
            end += 1
        if end > i:
            try:
                with transaction.atomic():
                    applied = _trade_run_apply(broker=broker, reports=reports[i:end], as_of=as_of)
            except (InterfaceError, OperationalError):
                raise
            except Exception as exc:
                # Needs judgement somewhere (or something unforeseen): this run goes one
                # by one, as it always could, each report judged and quarantined alone.
                if not isinstance(exc, DomainError):
                    log.exception("set-wise apply failed; applying the run one by one")
                for report in reports[i:end]:
                    results.append(_inbound_guarded(broker=broker, report=report, as_of=as_of))
                i = end
                continue
            results.extend(ApplyResult("applied") for _ in range(applied))
            i += applied
            if i == end:
                continue
        # Not a plain trade, or the one the run stopped at: judged alone.
        results.append(_inbound_guarded(broker=broker, report=reports[i], as_of=as_of))
        i += 1
    fix_messages_received(broker=broker, reports=reports, as_of=as_of)
    if mark is not None:
        SessionState.objects.update_or_create(
            broker=broker,
            defaults={
                "inbound_store_created": mark.store_created,
                "inbound_applied_seq_num": mark.seq_num,
            },
        )
    return results
