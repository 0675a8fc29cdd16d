"""What each end-of-day report contains: one function per kind, reading through the owning
apps' models (reads only), returning (columns, rows, account column). Every value becomes a
string, so the content hash does not depend on how a number was typed."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Sum

from .models import ReportKind


def _day(d: date) -> tuple[datetime, datetime]:
    start = datetime.combine(d, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def trades_by_account(d: date):
    from allocation.models import Allocation

    rows = [
        [
            a.account.code,
            a.block_id,
            a.block.security.symbol,
            a.side,
            a.quantity,
            a.avg_price,
            a.gross_amount,
            a.accrued_interest,
            a.commission,
            a.fees,
            a.net_amount,
            a.currency,
            a.settle_date,
            a.block.broker.code if a.block.broker_id else "",
        ]
        for a in Allocation.objects.filter(trade_date=d, replaced_at__isnull=True)
        .select_related("account", "block__security", "block__broker")
        .order_by("account__code", "block_id")
    ]
    # A bond's net is its clean gross plus the accrued interest (plus or less the charges).
    columns = ["account", "block", "security", "side", "quantity", "avg_price", "gross",
               "accrued_interest", "commission", "fees", "net", "currency", "settle_date",
               "broker"]  # fmt: skip
    return columns, rows, "account"


def commissions_by_broker(d: date):
    from allocation.models import Allocation

    rows = [
        [r["block__broker__code"] or "", r["currency"], r["n"], r["gross"], r["comm"], r["fees"]]
        for r in Allocation.objects.filter(trade_date=d, replaced_at__isnull=True)
        .values("block__broker__code", "currency")
        .annotate(
            n=Count("pk"), gross=Sum("gross_amount"), comm=Sum("commission"), fees=Sum("fees")
        )
        .order_by("block__broker__code", "currency")
    ]
    return ["broker", "currency", "allocations", "gross", "commission", "fees"], rows, ""


def compliance_overrides_breaches(d: date):
    from compliance.models import Breach, Override

    start, end = _day(d)
    rows = [
        ["override", o.order.account.code, o.order_id, o.verdict, o.reason, o.actor.username, o.at]
        for o in Override.objects.filter(at__gte=start, at__lt=end)
        .select_related("order__account", "actor")
        .order_by("at", "pk")
    ]
    rows += [
        [
            "breach",
            b.account.code if b.account_id else "",
            "",
            b.rule.name,
            b.message,
            b.cause,
            b.run.as_of,
        ]  # fmt: skip
        for b in Breach.objects.filter(run__as_of__gte=start, run__as_of__lt=end)
        .select_related("account", "rule", "run")
        .order_by("run__as_of", "pk")
    ]
    return ["what", "account", "order", "verdict_or_rule", "reason", "by_or_cause", "at"], rows, ""


def exceptions(d: date):
    from oms.models import OpsException

    start, end = _day(d)
    opened = OpsException.objects.filter(opened_at__gte=start, opened_at__lt=end)
    resolved = OpsException.objects.filter(resolved_at__gte=start, resolved_at__lt=end)
    rows = []
    for label, qs in (("opened", opened), ("resolved", resolved)):
        for e in qs.order_by("pk"):
            rows.append(
                [
                    label,
                    e.pk,
                    e.kind,
                    e.source,
                    e.ref,
                    e.summary,
                    e.opened_at,
                    e.resolved_at or "",
                    e.occurrences,
                ]  # fmt: skip
            )
    columns = ["event", "id", "kind", "source", "ref", "summary", "opened_at", "resolved_at",
               "occurrences"]  # fmt: skip
    return columns, rows, ""


def positions_cash(d: date):
    from positions.models import CashBalance, Position

    rows = [
        [
            "position",
            p.account.code,
            p.security.symbol,
            p.quantity,
            p.avg_cost,
            p.security.reference_price or "",
            p.realized_pnl,
        ]  # fmt: skip
        for p in Position.objects.exclude(quantity=0)
        .select_related("account", "security")
        .order_by("account__code", "security__symbol")
    ]
    rows += [
        ["cash", c.account.code, c.currency, c.settled, c.projected, "", ""]
        for c in CashBalance.objects.select_related("account").order_by("account__code", "currency")
    ]
    columns = ["line", "account", "security_or_currency", "quantity_or_settled",
               "avg_cost_or_projected", "reference_price", "realized_pnl"]  # fmt: skip
    return columns, rows, "account"


def tca_summary(d: date):
    from marketdata.tca_selectors import TcaFilter, tca_orders

    rows_by_account: dict = defaultdict(list)
    for row in tca_orders(user=None, flt=TcaFilter(date_from=d, date_to=d), as_of=_day(d)[1]):
        rows_by_account[(row["account"], row["broker"])].append(row)
    from marketdata.tca_selectors import tca_summary as summary

    rows = []
    for (account, broker), items in sorted(rows_by_account.items()):
        (s,) = summary(items, by="broker")
        rows.append(
            [
                account,
                broker,
                s["orders"],
                s["filled"],
                s["fill_rate"],
                s["shortfall_arrival_bps"],
                s["shortfall_vwap_bps"],
                s["shortfall_close_bps"],
                s["reject_rate"],
                s["cancel_rate"],
            ]  # fmt: skip
        )
    columns = ["account", "broker", "orders", "filled", "fill_rate", "shortfall_arrival_bps",
               "shortfall_vwap_bps", "shortfall_close_bps", "reject_rate", "cancel_rate"]  # fmt: skip
    return columns, rows, "account"


BUILDERS = {
    ReportKind.TRADES: trades_by_account,
    ReportKind.COMMISSIONS: commissions_by_broker,
    ReportKind.COMPLIANCE: compliance_overrides_breaches,
    ReportKind.EXCEPTIONS: exceptions,
    ReportKind.POSITIONS: positions_cash,
    ReportKind.TCA: tca_summary,
}


def text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)
