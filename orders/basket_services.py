"""Baskets and model rebalances: many orders from one CSV, previewed line by line, then created
together in one transaction as one Basket.

Each basket line goes through the same checks as an API order (orders.order_fields'
OrderInputSerializer for the field types, then order_input_validate for the rules), so the two
can never disagree.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from rest_framework.exceptions import ValidationError as DRFValidationError

from audit.services import audit_record
from compliance.services import compliance_program_what_if
from oms.csvio import write_csv
from oms.db import retry_on_conflict
from oms.errors import DomainError, NotFound, NotPermitted
from oms.fields import ZERO
from oms.models import Security
from oms.money import Terms, decimal_text
from oms.selectors import account_not_found
from positions.selectors import MissingFxRate, portfolio_snapshot

from .entry import orders_check_and_stage
from .models import Basket, OrderType, Side, TimeInForce
from .order_fields import OrderInputSerializer
from .services import (
    ORDER_INPUT_FIELDS,
    OrderInput,
    OrderLookups,
    account_manageable_by,
    order_data_fingerprint,
    order_input_validate,
    orders_insert_bulk,
)

MAX_CSV_BYTES = 2 * 1024 * 1024
# Confirm is set-wise (orders, events and audit rows each in one COPY, one compliance program,
# one staging step): 1,000 lines in about 1.2 s and 10,000 in about 9 s, preview included, on
# the 2-CPU benchmark machine under load (bench/orders_bench.py). 10,000 lines stay well
# inside a request; a bigger file is refused before anything is validated.
MAX_CSV_LINES = 10_000
BASKET_REQUIRED = ("account", "symbol", "side", "quantity", "order_type")
REBALANCE_COLUMNS = ("account", "symbol", "target_weight_pct")


class CsvRejected(DomainError):
    """The file as a whole cannot be read (size, encoding, header, line count)."""

    code = "csv_rejected"


@dataclass
class LineResult:
    line: int
    data: dict[str, str]
    errors: list[dict[str, str]] = field(default_factory=list)
    item: OrderInput | None = None

    @property
    def valid(self) -> bool:
        return not self.errors

    def error(self, column: str, reason: str) -> None:
        self.errors.append({"column": column, "reason": reason})


@dataclass
class BasketPreview:
    sha256: str
    lines: list[LineResult]
    # Rebalance only: the orders the targets come to (valid ones are what confirm creates).
    orders: list[LineResult] = field(default_factory=list)
    is_rebalance: bool = False
    # Rebalance only: how many of its orders compliance would pass, warn and block.
    verdict_counts: dict[str, int] = field(default_factory=dict)

    @property
    def valid_items(self) -> list[OrderInput]:
        source = self.orders if self.is_rebalance else self.lines
        return [r.item for r in source if r.valid and r.item is not None]

    @property
    def error_count(self) -> int:
        return sum(len(r.errors) for r in [*self.lines, *self.orders])


def csv_read(
    *, content: bytes, columns: tuple[str, ...], required: tuple[str, ...]
) -> tuple[str, Iterator[tuple[int, dict[str, str]]]]:
    """Check size, encoding and header; yield (line number, row) for each non-empty line."""
    if len(content) > MAX_CSV_BYTES:
        raise CsvRejected(
            f"The file is {len(content):,} bytes; the limit is {MAX_CSV_BYTES:,} bytes (2 MB)."
        )
    try:
        # utf-8-sig takes files with or without the byte-order mark Excel writes.
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvRejected(
            f"The file is not UTF-8 (invalid byte at position {exc.start}); "
            "save it as 'CSV UTF-8' and upload again."
        ) from None
    if "\x00" in text:
        raise CsvRejected("The file is not a text CSV (it contains NUL bytes).")
    sha256 = hashlib.sha256(content).hexdigest()
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip().lower() for cell in row]
            break
    if header is None:
        raise CsvRejected("The file is empty.")
    problems = []
    missing = [c for c in required if c not in header]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    unknown = [c for c in header if c not in columns]
    if unknown:
        problems.append(f"unknown column(s): {', '.join(c or '(blank)' for c in unknown)}")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        problems.append(f"repeated column(s): {', '.join(duplicated)}")
    if problems:
        raise CsvRejected(
            "Wrong header: " + "; ".join(problems) + f". Expected: {', '.join(columns)}.",
            details={"missing": missing, "unknown": unknown, "expected": list(columns)},
        )

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        count = 0
        start = reader.line_num + 1
        for values in reader:
            line = start
            start = reader.line_num + 1
            if not any(v.strip() for v in values):
                continue
            count += 1
            if count > MAX_CSV_LINES:
                raise CsvRejected(
                    f"The file has more than {MAX_CSV_LINES:,} lines; split it into smaller "
                    "baskets."
                )
            data = {
                name: (values[i].strip() if i < len(values) else "")
                for i, name in enumerate(header)
            }
            if len(values) > len(header):
                data["__extra__"] = ",".join(values[len(header) :])
            yield line, data

    return sha256, rows()


def _line_data(data: dict[str, str]) -> dict[str, Any]:
    """The API request a CSV line stands for: empty cells are absent fields."""
    return {k: v for k, v in data.items() if k in ORDER_INPUT_FIELDS and v != ""}


def _line_check(
    result: LineResult, *, pm, as_of: datetime, lookups: OrderLookups, serializer
) -> None:
    if "__extra__" in result.data:
        result.error("", "The line has more cells than the header.")
        return
    try:
        # run_validation rather than a new serializer per line: building one deep-copies its
        # ten fields, which cost more than the rest of a 10,000-line preview together.
        data = serializer.run_validation(_line_data(result.data))
    except DRFValidationError as exc:
        for column, messages in exc.detail.items():
            for message in messages:
                result.error(column, str(message))
        return
    try:
        result.item = order_input_validate(pm=pm, data=data, as_of=as_of, lookups=lookups)
    except (NotPermitted, NotFound) as exc:
        result.error("account", exc.message)
    except ValidationError as exc:
        for column, messages in exc.message_dict.items():
            for message in messages:
                result.error(column, message)


def basket_preview(*, pm, content: bytes, as_of: datetime) -> BasketPreview:
    """Every line of an uploaded basket with its validation result; nothing is written."""
    sha256, rows = csv_read(content=content, columns=ORDER_INPUT_FIELDS, required=BASKET_REQUIRED)
    lines = [LineResult(line=line, data=data) for line, data in rows]
    lookups = OrderLookups(
        account_codes=[r.data.get("account", "") for r in lines],
        symbols=[r.data.get("symbol", "") for r in lines],
    )
    serializer = OrderInputSerializer()  # stateless: one for every line
    seen: dict[str, int] = {}
    for result in lines:
        _line_check(result, pm=pm, as_of=as_of, lookups=lookups, serializer=serializer)
        if result.item is None:
            continue
        digest = order_data_fingerprint(data=result.item.as_data())
        if digest in seen:
            result.item = None
            result.error("", f"Duplicate of line {seen[digest]}.")
        else:
            seen[digest] = result.line
    return BasketPreview(sha256=sha256, lines=lines)


@retry_on_conflict(durable=True)
def basket_orders_create(
    *,
    pm,
    items: list[OrderInput],
    name: str,
    kind: str,
    as_of: datetime,
    filename: str = "",
    sha256: str = "",
) -> Basket:
    """Create the basket and all its orders, check them as one program, stage what passed."""
    if not items:
        raise DomainError("The basket has no valid lines to create.", code="empty_basket")
    basket = Basket.objects.create(
        name=name[:200] or filename[:200] or f"Basket {as_of:%Y-%m-%d %H:%M}",
        kind=kind,
        created_by=pm,
        created_at=as_of,
        source_filename=filename[:255],
        source_sha256=sha256,
        line_count=len(items),
    )
    order_ids = [o.pk for o in orders_insert_bulk(pm=pm, items=items, as_of=as_of, basket=basket)]
    audit_record(
        actor=pm,
        action="basket.create",
        obj=basket,
        occurred_at=as_of,
        after={"kind": kind, "orders": len(order_ids), "sha256": sha256, "file": filename},
    )
    orders_check_and_stage(order_ids=order_ids, actor=pm, as_of=as_of)
    return basket


def _expect_same_file(preview: BasketPreview, expected_sha256: str) -> None:
    if expected_sha256 and expected_sha256 != preview.sha256:
        raise DomainError(
            "The file differs from the one previewed; preview it again before confirming.",
            code="preview_mismatch",
        )


def basket_confirm(
    *,
    pm,
    content: bytes,
    as_of: datetime,
    filename: str = "",
    name: str = "",
    expected_sha256: str = "",
) -> tuple[Basket, BasketPreview]:
    """Re-check the file and create every valid line as one basket, in one transaction."""
    preview = basket_preview(pm=pm, content=content, as_of=as_of)
    _expect_same_file(preview, expected_sha256)
    basket = basket_orders_create(
        pm=pm,
        items=preview.valid_items,
        name=name,
        kind=Basket.Kind.UPLOAD,
        as_of=as_of,
        filename=filename,
        sha256=preview.sha256,
    )
    return basket, preview


# --- Model rebalance --------------------------------------------------------------------------


def _num(value: Decimal) -> str:
    return decimal_text(value) if value else "0"


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def rebalance_preview(*, pm, content: bytes, as_of: datetime) -> BasketPreview:
    """Turn target weights (% of NAV per account and symbol) into orders.

    The file is the whole model: for an account in the file, a holding that the file does not
    name has a target of 0 and is sold. Per account and security the order is
    target quantity (NAV x weight / reference price) minus the current position, rounded down
    to the lot size; zero orders are skipped. Market orders, DAY.
    """
    sha256, rows = csv_read(content=content, columns=REBALANCE_COLUMNS, required=REBALANCE_COLUMNS)
    lines = [LineResult(line=line, data=data) for line, data in rows]
    lookups = OrderLookups(
        account_codes=[r.data.get("account", "") for r in lines],
        symbols=[r.data.get("symbol", "") for r in lines],
    )
    targets: dict[int, dict[int, Decimal]] = {}
    seen: dict[tuple[int, int], int] = {}
    for result in lines:
        if "__extra__" in result.data:
            result.error("", "The line has more cells than the header.")
            continue
        code, symbol = result.data.get("account", ""), result.data.get("symbol", "").upper()
        account = lookups.account(code)
        security = lookups.security(symbol) if symbol else None
        weight = _decimal(result.data.get("target_weight_pct", ""))
        if not code:
            result.error("account", "Required.")
        elif account is None or not account_manageable_by(user=pm, account=account):
            result.error("account", account_not_found(code).message)
        if security is None:
            result.error("symbol", f"Unknown symbol '{symbol}'." if symbol else "Required.")
        elif not security.active:
            result.error("symbol", f"{symbol} is not active and cannot be traded.")
        elif not security.reference_price:
            result.error("symbol", f"{symbol} has no reference price.")
        if weight is None:
            result.error("target_weight_pct", "A number (percent of NAV) is required.")
        elif not ZERO <= weight <= 100:
            result.error("target_weight_pct", "The weight must be between 0 and 100.")
        if result.errors:
            continue
        key = (account.pk, security.pk)
        if key in seen:
            result.error("", f"Duplicate of line {seen[key]} ({code} {symbol}).")
            continue
        seen[key] = result.line
        targets.setdefault(account.pk, {})[security.pk] = weight
    for account_id, weights in targets.items():
        total = sum(weights.values(), ZERO)
        if total > 100:
            for result in lines:
                account = lookups.account(result.data.get("account", ""))
                if account is not None and account.pk == account_id and result.valid:
                    result.error(
                        "target_weight_pct", f"The weights of {account.code} add up to {total}%."
                    )
    bad_accounts = {
        acc.pk
        for r in lines
        if not r.valid and (acc := lookups.account(r.data.get("account", ""))) is not None
    }
    for account_id in bad_accounts:
        targets.pop(account_id, None)
    orders = _rebalance_orders(pm=pm, targets=targets, lookups=lookups, as_of=as_of)
    orders, counts = _rebalance_what_if(pm=pm, orders=orders, as_of=as_of)
    return BasketPreview(
        sha256=sha256, lines=lines, orders=orders, is_rebalance=True, verdict_counts=counts
    )


VERDICT_ORDER = {"BLOCK": 0, "WARN": 1, "PASS": 2}


def _rebalance_what_if(
    *, pm, orders: list[LineResult], as_of: datetime
) -> tuple[list[LineResult], dict[str, int]]:
    """Check the rebalance's orders as the basket confirm would submit them, saving nothing:
    each line gets its verdict and reasons, blocking lines first."""
    lines = [
        {
            "key": r.line,
            "account_id": r.item.account.pk,
            "security_id": r.item.security.pk,
            "side": r.item.side,
            "quantity": r.item.quantity,
            "order_type": r.item.order_type,
            "limit_price": r.item.limit_price,
        }
        for r in orders
        if r.valid and r.item is not None
    ]
    verdicts = compliance_program_what_if(pm=pm, as_of=as_of, lines=lines) if lines else {}
    counts = {"PASS": 0, "WARN": 0, "BLOCK": 0}
    for r in orders:
        if r.line not in verdicts:
            continue
        verdict, results = verdicts[r.line]
        counts[verdict] += 1
        r.data["compliance"] = verdict
        reasons = [x["message"] for x in results if x["outcome"] != "PASS"]
        if reasons:
            r.data["compliance_reasons"] = " ".join(reasons)
    ranked = sorted(orders, key=lambda r: VERDICT_ORDER.get(r.data.get("compliance", ""), 3))
    return ranked, counts


def _rebalance_orders(
    *, pm, targets: dict[int, dict[int, Decimal]], lookups: OrderLookups, as_of: datetime
) -> list[LineResult]:
    account_ids = sorted(targets)
    # Open orders count as done: a holding already being sold is not sold again.
    snapshot = portfolio_snapshot(account_ids=account_ids, as_of=as_of)
    accounts = {a.pk: a for a in lookups.accounts.values()}
    security_ids = {sid for w in targets.values() for sid in w} | {
        sid for a in account_ids for sid in snapshot.accounts[a].holdings
    }
    securities = {s.pk: s for s in Security.objects.filter(pk__in=security_ids)}
    # Holdings the model leaves out are sold: the order checks must know those securities too.
    lookups.securities.update({s.symbol: s for s in securities.values()})
    results: list[LineResult] = []
    for account_id in account_ids:
        account, snap = accounts[account_id], snapshot.accounts[account_id]
        weights = dict(targets[account_id])
        for security_id in snap.holdings:
            weights.setdefault(security_id, ZERO)
        try:
            nav = snap.nav
        except MissingFxRate as exc:
            nav, fx_error = None, exc.message
        for security_id in sorted(weights, key=lambda sid: securities[sid].symbol):
            security = securities[security_id]
            held = snap.holdings.get(security_id, ZERO)
            pending = snap.open_buys.get(security_id, ZERO) - snap.open_sells.get(security_id, ZERO)
            current = held + pending
            data = {
                "account": account.code,
                "symbol": security.symbol,
                "target_weight_pct": _num(weights[security_id]),
                "current_quantity": _num(held),
                "open_quantity": _num(pending),
            }
            result = LineResult(line=len(results) + 1, data=data)
            results.append(result)
            if nav is None:
                result.error("account", fx_error)
                continue
            if not security.reference_price:
                result.error("symbol", f"{security.symbol} has no reference price.")
                continue
            try:
                # What one unit of quantity is worth in the account's base currency: a bond's
                # face per 100 plus accrued interest, a contract's multiplier (the NAV's terms).
                unit = Terms.of(security).unit_value(security.reference_price, as_of.date())
                price = snapshot.to_base(account_id, unit, security.currency)
            except MissingFxRate as exc:
                result.error("symbol", exc.message)
                continue
            if nav > 0:
                weight = (held * price / nav * Decimal(100)).quantize(Decimal("0.01"))
                data["current_weight_pct"] = _num(weight)
                data["drift_pct"] = _num(weight - weights[security_id])
            target_qty = nav * weights[security_id] / Decimal(100) / price
            delta = target_qty - current
            lot = security.lot_size
            quantity = (abs(delta) / lot).to_integral_value(rounding=ROUND_DOWN) * lot
            data["target_quantity"] = str(target_qty.quantize(Decimal("0.0001")))
            if quantity == 0:
                result.data["skipped"] = (
                    "no order (open orders already reach the target)"
                    if pending and (target_qty - held).copy_abs() >= lot
                    else "no order (less than one lot to trade)"
                )
                continue
            order_data = {
                "account": account.code,
                "symbol": security.symbol,
                "side": Side.BUY if delta > 0 else Side.SELL,
                "quantity": quantity,
                "order_type": OrderType.MARKET,
                "time_in_force": TimeInForce.DAY,
                "instructions": "Model rebalance",
            }
            data.update(side=order_data["side"], quantity=_num(quantity))
            try:
                result.item = order_input_validate(
                    pm=pm, data=order_data, as_of=as_of, lookups=lookups
                )
            except ValidationError as exc:
                for column, messages in exc.message_dict.items():
                    for message in messages:
                        result.error(column, message)
    return results


# The drift report: per account and security, the target against where the account stands
# (the preview's own figures), the order that closes the gap and what compliance says of it.
DRIFT_COLUMNS = [
    "account", "symbol", "target_weight_pct", "current_weight_pct", "drift_pct",
    "current_quantity", "open_quantity", "target_quantity", "side", "quantity", "compliance",
    "compliance_reasons", "note",
]  # fmt: skip


def rebalance_drift_csv(*, preview: BasketPreview) -> str:
    """The rebalance preview as CSV (DRIFT_COLUMNS), a row per account and security in the
    model or held, in the preview's order (blocking lines first); `note` says why no order
    (skipped, or the line's errors)."""
    rows = []
    for r in preview.orders:
        note = r.data.get("skipped", "") or "; ".join(
            f"{e['column']}: {e['reason']}" if e["column"] else e["reason"] for e in r.errors
        )
        rows.append([*(r.data.get(c, "") for c in DRIFT_COLUMNS[:-1]), note])
    return write_csv(DRIFT_COLUMNS, rows)


def rebalance_confirm(
    *,
    pm,
    content: bytes,
    as_of: datetime,
    filename: str = "",
    name: str = "",
    expected_sha256: str = "",
) -> tuple[Basket, BasketPreview]:
    """Recompute the rebalance from the same file and create its orders as one basket."""
    preview = rebalance_preview(pm=pm, content=content, as_of=as_of)
    _expect_same_file(preview, expected_sha256)
    basket = basket_orders_create(
        pm=pm,
        items=preview.valid_items,
        name=name or f"Rebalance {as_of:%Y-%m-%d %H:%M}",
        kind=Basket.Kind.REBALANCE,
        as_of=as_of,
        filename=filename,
        sha256=preview.sha256,
    )
    return basket, preview
