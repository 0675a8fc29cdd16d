"""The start-of-day file from the custodian: opening positions and settled cash.

Format (CSV, UTF-8, header required, columns in any order):

    type,account,security,currency,quantity,avg_cost,amount
    POS,ACCT1,AAPL,USD,1500,150.25,
    POS,C-ACCT1,US5949181045,,200,401.10,
    CASH,ACCT1,,USD,,,1000000.00

- type: POS (a holding) or CASH (settled cash in one currency).
- account: the OMS account code or the custodian's account number.
- POS: security is a symbol or ISIN; quantity (negative for a short); avg_cost >= 0;
  currency, if given, must be the security's.
- CASH: currency (ISO code) and amount.
The file is the full statement of every account it names: a holding the OMS keeps for such an
account and the file omits is set to zero. Nothing loads unless every line is valid.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import Q

from oms.errors import DomainError
from oms.models import Account, Security

from .models import Position
from .services import OpeningCash, OpeningPosition, cash_settle_due, opening_balances_load

COLUMNS = ("type", "account", "security", "currency", "quantity", "avg_cost", "amount")
REQUIRED = ("type", "account")
CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_LINES = 200_000


@dataclass
class SodFile:
    positions: list[OpeningPosition] = field(default_factory=list)
    cash: list[OpeningCash] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lines: int = 0


def _decimal(raw: str, name: str, errors: list[str], line: int) -> Decimal | None:
    raw = raw.strip().replace(",", "") if raw else ""
    if not raw:
        errors.append(f"line {line}: {name} is required.")
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        errors.append(f"line {line}: {name} {raw!r} is not a number.")
        return None
    if not value.is_finite():
        errors.append(f"line {line}: {name} {raw!r} is not a number.")
        return None
    if value.as_tuple().exponent < -8:
        errors.append(f"line {line}: {name} {raw!r} has more than 8 decimal places.")
        return None
    return value


def sod_parse(text: str) -> SodFile:
    """Read and validate every line; collect every error with its line number."""
    result = SodFile()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        result.errors.append(f"line 1: header lacks {', '.join(missing)}.")
        return result
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        result.errors.append(f"line 1: unknown column(s) {', '.join(unknown)}.")
        return result
    reader.fieldnames = header
    raw_rows = []
    for row in reader:
        if reader.line_num > MAX_LINES:
            result.errors.append(f"The file has more than {MAX_LINES} lines.")
            return result
        if None in row:
            result.errors.append(f"line {reader.line_num}: more cells than columns.")
            continue
        values = {k: (v or "").strip() for k, v in row.items()}
        if not any(values.values()):
            continue
        raw_rows.append((reader.line_num, values))
    result.lines = len(raw_rows)

    refs = {r["account"] for _, r in raw_rows}
    accounts: dict[str, Account] = {}
    for acct in Account.objects.filter(Q(code__in=refs) | Q(custodian_account__in=refs)):
        accounts.setdefault(acct.code, acct)
        accounts.setdefault(acct.custodian_account, acct)
    sec_refs = {r.get("security", "") for _, r in raw_rows} - {""}
    securities: dict[str, Security] = {}
    for sec in Security.objects.filter(Q(symbol__in=sec_refs) | Q(isin__in=sec_refs)):
        securities[sec.symbol] = sec
        if sec.isin:
            securities[sec.isin] = sec

    seen_pos: dict[tuple[int, int], int] = {}
    seen_cash: dict[tuple[int, str], int] = {}
    errors = result.errors
    for line, r in raw_rows:
        kind = r.get("type", "").upper()
        account = accounts.get(r["account"])
        if account is None:
            errors.append(f"line {line}: unknown account {r['account']!r}.")
            continue
        currency = r.get("currency", "").upper()
        if kind == "POS":
            sec = securities.get(r.get("security", ""))
            if sec is None:
                errors.append(f"line {line}: unknown security {r.get('security', '')!r}.")
                continue
            if currency and currency != sec.currency:
                errors.append(
                    f"line {line}: {sec.symbol} trades in {sec.currency}, not {currency}."
                )
                continue
            qty = _decimal(r.get("quantity", ""), "quantity", errors, line)
            cost = _decimal(r.get("avg_cost", ""), "avg_cost", errors, line)
            if qty is None or cost is None:
                continue
            if cost < 0:
                errors.append(f"line {line}: avg_cost cannot be negative.")
                continue
            key = (account.pk, sec.pk)
            if key in seen_pos:
                errors.append(
                    f"line {line}: {account.code} {sec.symbol} already given on line "
                    f"{seen_pos[key]}."
                )
                continue
            seen_pos[key] = line
            result.positions.append(OpeningPosition(account, sec, qty, cost if qty else Decimal(0)))
        elif kind == "CASH":
            if not CURRENCY.match(currency):
                errors.append(f"line {line}: currency {currency!r} is not an ISO code.")
                continue
            amount = _decimal(r.get("amount", ""), "amount", errors, line)
            if amount is None:
                continue
            key = (account.pk, currency)
            if key in seen_cash:
                errors.append(
                    f"line {line}: {account.code} {currency} cash already given on line "
                    f"{seen_cash[key]}."
                )
                continue
            seen_cash[key] = line
            result.cash.append(OpeningCash(account, currency, amount))
        else:
            errors.append(f"line {line}: type must be POS or CASH, not {r.get('type', '')!r}.")
    if not result.errors:
        _flatten_omitted(result)
    return result


def _flatten_omitted(result: SodFile) -> None:
    """Holdings of the file's accounts that the file leaves out are closed at zero."""
    account_by_id = {p.account.pk: p.account for p in result.positions}
    account_by_id.update({c.account.pk: c.account for c in result.cash})
    given = {(p.account.pk, p.security.pk) for p in result.positions}
    omitted = (
        Position.objects.filter(account_id__in=account_by_id)
        .exclude(quantity=0)
        .select_related("security")
    )
    for p in omitted:
        if (p.account_id, p.security_id) not in given:
            result.positions.append(
                OpeningPosition(account_by_id[p.account_id], p.security, Decimal(0), Decimal(0))
            )


def sod_load(*, text: str, as_of: datetime, actor=None, source: str = "") -> tuple[int, int]:
    """Load the custodian's start-of-day file (described above): settle what is due, then
    make the file's figures the opening balances. All or nothing; a DomainError
    lists every bad line."""
    parsed = sod_parse(text)
    if parsed.errors:
        raise DomainError(
            f"The start-of-day file has {len(parsed.errors)} error(s); nothing was loaded.",
            code="invalid_file",
            details={"errors": parsed.errors},
        )
    if not parsed.positions and not parsed.cash:
        raise DomainError("The start-of-day file has no lines.", code="invalid_file")
    with transaction.atomic():
        cash_settle_due(as_of=as_of)
        opening_balances_load(
            positions=parsed.positions,
            cash=parsed.cash,
            replace=True,
            actor=actor,
            source=source or "start-of-day file",
        )
    return len(parsed.positions), len(parsed.cash)
