"""Run in a subprocess against the private database of the Postgres-restart case (the test
process's own ORM is bound to the test database): `setup` creates the desk, the broker and
routed blocks and prints their ids; `state` prints what the database holds for them."""

from __future__ import annotations

import json
import os
import sys

import django


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms.settings.test")
    django.setup()
    from fixgateway.models import Broker, Execution
    from orders.models import Block, Order
    from tests.factories import build_refdata
    from tests.fix.conftest import routed_block

    command, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    if command == "setup":
        desk = build_refdata()
        values = dict(args["broker"])
        # The copy may already hold the test's broker row: same session, so the same row.
        broker, _ = Broker.objects.update_or_create(code=values.pop("code"), defaults=values)
        ids = []
        for i in range(args["blocks"]):
            security = desk.aapl if i % 2 == 0 else desk.msft
            block = routed_block(desk, broker, *args["quantities"], security=security)
            ids.append(block.pk)
        print(json.dumps({"blocks": ids}))
    elif command == "state":
        out = {}
        for block in Block.objects.filter(pk__in=args["blocks"]):
            out[block.pk] = {
                "status": block.status,
                "cum": str(block.cum_qty),
                "fills": Execution.objects.filter(
                    fix_order__block=block, exec_type="F", state="APPLIED"
                ).count(),
                "orders_cum": [
                    str(o.cum_qty) for o in Order.objects.filter(block=block).order_by("pk")
                ],
            }
        print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
