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


def test_an_event_posted_while_the_erasure_runs_is_refused_after_it(own_app, new_id, monkeypatch):
    """The check ran before the event's transaction: an event posted while the erasure ran
    passed it (no ledger line yet), waited for the erasure to commit, and was stored after
    it (found by the session's reviewer). Now it is checked inside its transaction, after
    the erasure's (the customer's lock on PostgreSQL)."""
    import threading
    import time

    from service.erasure_ledger import ErasureLedger

    app = own_app
    engine = app.extensions["vea"].engine
    desktop = {"Authorization": f"Bearer {create_key(engine, 'desktop')[1]}"}
    admin = {"Authorization": f"Bearer {create_key(engine, 'admin')[1]}"}
    customer = new_id("c-")
    yesterday = iso(datetime.now(UTC) - timedelta(days=1))
    event = {"event_id": new_id("ev-"), "type": "churned", "occurred_at": yesterday}
    client = app.test_client()
    assert (
        client.post(f"/v1/customers/{customer}/events", json=event, headers=desktop).status_code
        == 201
    )

    appending = threading.Event()
    real_append = ErasureLedger._append

    def slow_append(self, *args, **kwargs):
        appending.set()  # the rows are deleted, the transaction not yet committed
        time.sleep(0.5)
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(ErasureLedger, "_append", slow_append)
    statuses = {}

    def erase() -> None:
        statuses["erase"] = (
            app.test_client().delete(f"/v1/customers/{customer}", headers=admin).status_code
        )

    eraser = threading.Thread(target=erase)
    eraser.start()
    assert appending.wait(10)
    retry = app.test_client().post(f"/v1/customers/{customer}/events", json=event, headers=desktop)
    eraser.join(10)
    assert statuses["erase"] == 200
    assert retry.status_code == 409, retry.json
    assert retry.json["error"]["code"] == "customer_erased"
    assert client.get(f"/v1/customers/{customer}", headers=admin).json["events"] == []
