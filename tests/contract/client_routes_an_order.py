"""A client generated from the served spec (openapi-python-client) routes an order, reads it
back, retries it and cancels it, all through the generated types.

    python3 client_routes_an_order.py BASE_URL KEY     (the generated package on PYTHONPATH)
"""
import datetime
import sys

from omniroute_client import AuthenticatedClient
from omniroute_client.api.orders import cancel_order, get_order, route_order
from omniroute_client.api.stores import nearby_stores
from omniroute_client.models import DecisionDoc, ErrorBody, LineInDoc, LonLatDoc, OrderViewDoc, ShipOrderDoc
from omniroute_client.models.ship_order_doc_mode import ShipOrderDocMode

base_url, key = sys.argv[1], sys.argv[2]
client = AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=True)

# A store near Chengdu that has SKU "2" available.
near = nearby_stores.sync(client=client, lat=30.71352, lon=103.904716, k=3, sku="2")
assert isinstance(near, list) and near, near
order = ShipOrderDoc(
    order_id="CLIENT-1",
    created_at=datetime.datetime(2026, 11, 11, tzinfo=datetime.timezone(datetime.timedelta(hours=8))),
    customer=LonLatDoc(lon=103.904716, lat=30.71352),
    mode=ShipOrderDocMode.SHIP,
    lines=[LineInDoc(sku="2", qty=1)],
    customer_id="C-1001",
)
decision = route_order.sync(client=client, body=order)
assert isinstance(decision, DecisionDoc), decision
assert decision.status.value == "assigned", decision.to_dict()
assert decision.shipments[0].store_id == near[0].store_id, (decision.to_dict(), near[0].to_dict())
assert decision.reservation_state.value == "held"

again = route_order.sync(client=client, body=order)
assert again.to_dict() == decision.to_dict(), "a retry answers the same"

view = get_order.sync(client=client, order_id="CLIENT-1")
assert isinstance(view, OrderViewDoc) and view.state.value == "held", view
cancelled = cancel_order.sync(client=client, order_id="CLIENT-1")
assert isinstance(cancelled, OrderViewDoc) and cancelled.state.value == "released", cancelled

# An error comes back as the documented error body.
other = ShipOrderDoc.from_dict(dict(order.to_dict(), lines=[{"sku": "2", "qty": 2}]))
conflict = route_order.sync_detailed(client=AuthenticatedClient(base_url=base_url, token=key), body=other)
assert conflict.status_code == 409 and isinstance(conflict.parsed, ErrorBody), conflict
assert conflict.parsed.code == "idempotency_mismatch"
print("generated client: routed, read, retried, cancelled", decision.shipments[0].store_id)
