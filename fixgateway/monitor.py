"""The message monitor: application messages kept as they crossed the wire (`FixMessage`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q
from django.db.models.sql import UpdateQuery

from oms.bulk_rows import rows_insert

from .models import Broker, FixMessage, OutboxMessage
from .reports import InboundReport

# FixMessage's columns in rows_insert's order (every field but the key).
FIX_MESSAGE_FIELDS = (
    "broker_id",
    "direction",
    "msg_type",
    "seq_num",
    "seq_epoch",
    "cl_ord_id",
    "orig_cl_ord_id",
    "order_id",
    "exec_id",
    "at",
    "raw",
)


@dataclass(frozen=True)
class SentMessage:
    """An application message QuickFIX is about to write (toApp), as the monitor keeps it."""

    msg_type: str
    seq_num: int | None
    seq_epoch: str
    raw: str
    cl_ord_id: str = ""
    orig_cl_ord_id: str = ""
    order_id: str = ""
    exec_id: str = ""

    def values(self, *, broker_id: int, at: datetime) -> tuple:
        return (
            broker_id,
            FixMessage.Direction.OUT.value,
            self.msg_type,
            self.seq_num,
            self.seq_epoch,
            self.cl_ord_id[:64],
            self.orig_cl_ord_id[:64],
            self.order_id[:64],
            self.exec_id[:64],
            at,
            self.raw,
        )


def update_with_message(queryset, values: dict[str, Any], message: tuple) -> int:
    """queryset.update(**values) and the insert of one FixMessage row in one statement (a
    data-modifying WITH): toApp runs before every order leaves, so keeping the message must
    not cost it a round trip. Returns the number of rows updated."""
    update = queryset.query.chain(UpdateQuery)
    update.add_update_values(values)
    compiler = update.get_compiler(queryset.db)
    compiler.pre_sql_setup()
    update_sql, update_params = compiler.as_sql()
    quote = connection.ops.quote_name
    meta = FixMessage._meta
    columns = ", ".join(quote(meta.get_field(f).column) for f in FIX_MESSAGE_FIELDS)
    placeholders = ", ".join(["%s"] * len(FIX_MESSAGE_FIELDS))
    sql = (
        f"WITH kept AS (INSERT INTO {quote(meta.db_table)} ({columns}) "
        f"VALUES ({placeholders})) {update_sql}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*message, *update_params])
        return cursor.rowcount


def fix_message_sent(*, broker_id: int, message: SentMessage, as_of: datetime) -> None:
    """Keep an application message that is no outbox row (a status request, a
    DontKnowTrade): one INSERT."""
    rows_insert(FixMessage, FIX_MESSAGE_FIELDS, [message.values(broker_id=broker_id, at=as_of)])


def _referred_cl_ord_ids(broker: Broker, reports: list[InboundReport]) -> dict[tuple, str]:
    """For rejects naming no ClOrdID (35=3, and 35=j without BusinessRejectRefID) that the
    application could not place either (sent before a restart): the ClOrdID of the outbox
    message with that epoch and RefSeqNum. No query when there are none."""
    wanted = {
        (r.seq_epoch, r.ref_seq_num)
        for r in reports
        if r.msg_type in ("3", "j")
        and r.ref_seq_num
        and not (r.cl_ord_id or r.business_ref_id or r.extra.get("sent_cl_ord_id"))
    }
    if not wanted:
        return {}
    match = Q()
    for epoch, seq in wanted:
        match |= Q(sent_seq_epoch=epoch, sent_seq_num=seq)
    rows = OutboxMessage.objects.filter(match, broker=broker).values_list(
        "sent_seq_epoch", "sent_seq_num", "cl_ord_id"
    )
    return {(epoch, seq): cl_ord_id for epoch, seq, cl_ord_id in rows}


def fix_messages_received(*, broker: Broker, reports: list[InboundReport], as_of: datetime) -> None:
    """Keep the inbound batch's messages for the monitor, in the batch's transaction, at a
    cost that does not grow with the batch (rows_insert: COPY from two rows). A reject that carries no ClOrdID is kept
    under the ClOrdID of the message it refers to, so it shows in that order's history."""
    referred = _referred_cl_ord_ids(broker, reports)
    rows = [
        (
            broker.pk,
            FixMessage.Direction.IN.value,
            report.msg_type[:4],
            report.seq_num,
            report.seq_epoch,
            (
                report.cl_ord_id
                or report.extra.get("sent_cl_ord_id", "")
                or (report.business_ref_id if report.msg_type == "j" else "")
                or referred.get((report.seq_epoch, report.ref_seq_num), "")
            )[:64],
            report.orig_cl_ord_id[:64],
            report.order_id[:64],
            report.exec_id[:64],
            as_of,
            report.raw,
        )
        for report in reports
    ]
    rows_insert(FixMessage, FIX_MESSAGE_FIELDS, rows)
