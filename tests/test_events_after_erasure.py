"""A CRM webhook retrying an event after the customer's erasure brought the erased
customer back (the event stored anew, GET /v1/customers/{id} showing it, and a restore's
reapply-erasures keeping it as a later record). An event that happened before the
customer's latest erasure is refused (409 customer_erased); a later one is a new record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.auth import create_key


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_an_event_from_before_the_erasure_is_not_stored_again(own_app, new_id):
    app, client = own_app, own_app.test_client()
    engine = app.extensions["vea"].engine
    desktop = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    admin = {"Authorization": f"Bearer {create_key(engine, 'admin')[1]}"}
    customer, other = new_id("c-"), new_id("c-")
    yesterday = iso(datetime.now(UTC) - timedelta(days=1))
    event = {"event_id": new_id("ev-"), "type": "churned", "occurred_at": yesterday}
    assert (
        client.post(f"/v1/customers/{customer}/events", json=event, headers=desktop).status_code
        == 201
    )
    assert client.delete(f"/v1/customers/{customer}", headers=admin).status_code == 200

    # The webhook's retry, and another event of before the erasure without an id.
    for body in (event, {"type": "renewed", "occurred_at": yesterday}):
        refused = client.post(f"/v1/customers/{customer}/events", json=body, headers=desktop)
        assert refused.status_code == 409, refused.json
        assert refused.json["error"]["code"] == "customer_erased"
        assert "erased at" in refused.json["error"]["message"]
    records = client.get(f"/v1/customers/{customer}", headers=admin).json
    assert records["events"] == [] and records["decisions"] == []

    # After the erasure: a new record. Another customer's old events: as ever.
    later = client.post(
        f"/v1/customers/{customer}/events", json={"type": "renewed"}, headers=desktop
    )
    assert later.status_code == 201, later.json
    old = {"type": "renewed", "occurred_at": yesterday}
    assert (
        client.post(f"/v1/customers/{other}/events", json=old, headers=desktop).status_code == 201
    )
