"""The Operations block page names its block, and a broker's port is a real TCP port."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from fixgateway.models import Broker

from .test_booking_ledger import Desk

pytestmark = pytest.mark.django_db


def test_the_block_page_header_names_the_block(client, refdata):
    desk = Desk(tag="P")
    block = desk.block([100, 200])
    client.force_login(refdata.ops)
    page = client.get(f"/operations/blocks/{block.pk}/").content.decode()
    assert f"<h1>Block {block.pk}: BUY LEDGP</h1>" in page
    assert f"<title>Block {block.pk} allocations" in page
    assert "Executed 0 of 300 · status ROUTED" in page


@pytest.mark.parametrize("port", [0, 65536, 99999])
def test_a_broker_port_outside_1_to_65535_is_refused(refdata, port):
    with pytest.raises(IntegrityError), transaction.atomic():
        Broker.objects.create(
            code=f"P{port}", name="x", port=port, sender_comp_id=f"S{port}", target_comp_id="T"
        )


def test_the_admin_form_says_what_a_port_may_be(client, refdata):
    client.force_login(refdata.admin)
    response = client.post(
        "/admin/fixgateway/broker/add/",
        {"code": "BADPORT", "name": "x", "host": "127.0.0.1", "port": "99999"},
    )
    assert response.status_code == 200  # the form again, with its errors
    assert "Ensure this value is less than or equal to 65535." in response.content.decode()
    assert not Broker.objects.filter(code="BADPORT").exists()
