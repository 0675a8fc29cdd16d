"""The largest basket allowed goes through in one confirm, every line to its order with its
history; one line more is refused with a clear error before anything is validated."""

from datetime import UTC, datetime

import pytest

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from orders.basket_services import MAX_CSV_LINES, CsvRejected, basket_confirm
from orders.models import OrderEvent

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
HEADER = "account,symbol,side,quantity,order_type,limit_price,stop_price,time_in_force,expire_date,instructions"


def _content(lines: int) -> bytes:
    symbols = ("AAPL", "MSFT", "XOM")
    rows = [f"ACCT1,{symbols[i % 3]},BUY,{1 + i},MARKET,,,DAY,,line {i}" for i in range(lines)]
    return "\n".join([HEADER, *rows, ""]).encode()


def test_a_basket_of_the_maximum_size_is_created_checked_and_staged(refdata):
    assert MAX_CSV_LINES == 10_000
    basket, preview = basket_confirm(pm=refdata.pm1, content=_content(MAX_CSV_LINES), as_of=AS_OF)
    assert preview.error_count == 0
    orders = list(basket.orders.order_by("pk").values_list("pk", "quantity", "status"))
    assert len(orders) == MAX_CSV_LINES
    # In the file's order, every one staged (no rules in force here).
    assert [int(q) for _pk, q, _s in orders] == list(range(1, MAX_CSV_LINES + 1))
    assert {s for _pk, _q, s in orders} == {"STAGED"}
    last = orders[-1][0]
    assert list(
        OrderEvent.objects.filter(order_id=last).order_by("id").values_list("kind", flat=True)
    ) == ["create", "compliance_pass", "stage"]
    assert list(
        AuditEvent.objects.filter(object_type="orders.order", object_id=str(last))
        .order_by("chain_seq")
        .values_list("action", flat=True)
    ) == ["order.create", "order.compliance_pass", "order.stage"]
    assert audit_chain_verify()[1] is None


def test_one_line_over_the_maximum_is_refused(refdata):
    with pytest.raises(CsvRejected, match=f"more than {MAX_CSV_LINES:,} lines"):
        basket_confirm(pm=refdata.pm1, content=_content(MAX_CSV_LINES + 1), as_of=AS_OF)
    assert not refdata.pm1.orders.exists()
