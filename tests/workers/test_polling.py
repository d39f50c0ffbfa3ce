"""Real Celery workers on Redis + PostgreSQL poll the simulators into things."""

from __future__ import annotations

import time

import requests
from flows import CLIENTS, client_row, owm_client, owm_instance, repoll, wait_status
from helpers import OWM_KEY, wait_until

from thingbridge.db import utcnow
from thingbridge.models import ConnectorClient, Property, Thing, ThingMapping


def test_owm_client_polled_into_one_thing(api, owm_sim, start_worker, flask_app):
    start_worker()
    client_id = owm_client(api)
    client = wait_status(client_id, "STARTED")
    assert client.last_success_at and client.failure_count == 0
    assert client.next_poll_at > utcnow()  # next poll ~10 minutes out
    body = api.get(f"{CLIENTS}/{client_id}").json
    assert body["status"] == "STARTED"
    [mapping] = body["mappings"]
    assert mapping["connector_thing_id"] == "city:berlin"
    thing = api.get(f"/api/v1/things/{mapping['thing_id']}?expand=components").json
    assert thing["name"] == "Weather Berlin" and thing["status"] == "AVAILABLE"
    components = {c["id"]: c for c in thing["components"]}
    assert {"temperature", "humidity", "pressure", "wind", "conditions"} <= set(components)
    temp = next(p for p in components["temperature"]["properties"] if p["id"] == "temperature")
    assert temp["unit"] == "°C" and float(temp["value"]) and temp["type"] == "NUMBER"
    # connector things are read-only to the app
    resp = api.delete(f"/api/v1/things/{mapping['thing_id']}")
    assert resp.status_code == 409 and resp.json["error"] == "CONNECTOR_OWNED"


def test_repeated_polls_never_duplicate_and_only_changes_move(api, owm_sim, start_worker):
    start_worker()
    client_id = owm_client(api)
    wait_status(client_id, "STARTED")
    first = {p.id: (p.value, p.last_update) for p in Property.select()}
    stamp = client_row(client_id).last_success_at
    repoll(client_id)
    wait_until(lambda: client_row(client_id).last_success_at > stamp, message="second poll")
    assert Thing.select().count() == 1 and ThingMapping.select().count() == 1
    second = {p.id: (p.value, p.last_update) for p in Property.select()}
    assert second.keys() == first.keys()
    # An unchanged reading keeps its lastUpdate; only a changed one (the simulator's 10-minute
    # bucket may turn between the polls) moves it.
    for prop_id, (value, stamp) in second.items():
        assert (stamp == first[prop_id][1]) == (value == first[prop_id][0])


def test_transient_failure_backs_off_and_keeps_status(api, owm_sim, start_worker):
    start_worker()
    client_id = owm_client(api)
    wait_status(client_id, "STARTED")
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "error_500"}, timeout=5)
    repoll(client_id)
    client = wait_until(lambda: client_row(client_id).failure_count == 1 and client_row(client_id),
                        message="failure recorded")
    assert client.status == "STARTED"
    delay = (client.next_poll_at - utcnow()).total_seconds()
    assert 15 < delay < 40  # 30 s first backoff, jittered


def test_rate_limit_429_honors_retry_after(api, owm_sim, start_worker):
    start_worker()
    owm_instance(api)
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "rate_limited"}, timeout=5)
    client_id = owm_client(api)
    client = wait_until(lambda: client_row(client_id).failure_count == 1 and client_row(client_id),
                        message="throttled")
    assert client.status == "STARTING"
    assert (client.next_poll_at - utcnow()).total_seconds() > 45  # Retry-After: 60, jittered


def test_revoked_key_is_error_with_reason(api, owm_sim, start_worker):
    start_worker()
    client_id = owm_client(api)
    wait_status(client_id, "STARTED")
    requests.post(f"{owm_sim}/_sim/control", json={"revoked_keys": [OWM_KEY]}, timeout=5)
    repoll(client_id)
    client = wait_status(client_id, "ERROR")
    assert "invalid OpenWeatherMap app key" in client.status_reason
    assert client.next_poll_at is None


def test_instance_rate_budget_is_shared_by_all_clients(api, owm_sim, start_worker, flask_app):
    """The OWM key's budget (60/min by default) caps polls across every client."""
    from thingbridge.models import RateBudget

    start_worker()
    client_ids = [owm_client(api.as_subject(f"user{i}"), "London") for i in range(3)]
    for client_id in client_ids:
        wait_status(client_id, "STARTED")
    RateBudget.update(used=60).execute()  # the key's minute is spent
    stamp = {c: client_row(c).last_success_at for c in client_ids}
    calls_before = requests.get(f"{owm_sim}/_sim/stats", timeout=5).json()["calls"]
    for client_id in client_ids:
        repoll(client_id)
    wait_until(lambda: all(client_row(c).next_poll_at > utcnow() for c in client_ids),
               message="rescheduled")
    time.sleep(1)
    assert requests.get(f"{owm_sim}/_sim/stats", timeout=5).json()["calls"] == calls_before
    assert all(client_row(c).last_success_at == stamp[c] for c in client_ids)


def test_killed_worker_mid_poll_completes_once_without_duplicates(api, owm_sim, start_worker):
    owm_instance(api)
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "timeout", "timeout_seconds": 2.5},
                  timeout=5)
    first = start_worker("doomed", concurrency=1)
    client_id = owm_client(api)
    # Wait until the worker is inside the provider call, then kill it without warning.
    wait_until(lambda: requests.get(f"{owm_sim}/_sim/stats", timeout=5).json()["calls"] >= 1,
               message="poll in flight")
    first.kill()
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "ok"}, timeout=5)
    assert client_row(client_id).status == "STARTING"
    start_worker("rescuer")
    # The unacknowledged task comes back after the broker's visibility timeout (6 s here).
    client = wait_status(client_id, "STARTED", timeout=60)
    assert client.last_success_at is not None
    assert Thing.select().count() == 1 and ThingMapping.select().count() == 1


def test_a_stale_copy_of_a_poll_task_does_nothing(api, owm_sim):
    """A poll task the broker hands out again after its worker died, or one overtaken by a
    newer claim, finds its client polled since or held, and calls no provider."""
    from thingbridge_workers.polling import claim_due, poll

    client_id = owm_client(api)
    assert poll(client_id, "first-token") == "ok"
    calls = requests.get(f"{owm_sim}/_sim/stats", timeout=5).json()["calls"]
    assert poll(client_id, "first-token") == "held"  # polled since: not due
    ConnectorClient.update(next_poll_at=utcnow()).where(
        ConnectorClient.id == client_id).execute()
    [claimed], token = claim_due(10)  # due again, and the dispatcher claims it
    assert claimed == client_id
    assert poll(client_id, "first-token") == "held"  # the newer claim holds it
    assert requests.get(f"{owm_sim}/_sim/stats", timeout=5).json()["calls"] == calls
    assert poll(client_id, token) == "ok"  # the claim's own task polls
    assert client_row(client_id).lease_token is None  # and lets go


def test_delete_client_deletes_its_things(api, owm_sim, start_worker):
    start_worker()
    client_id = owm_client(api)
    wait_status(client_id, "STARTED")
    assert Thing.select().count() == 1
    assert api.delete(f"{CLIENTS}/{client_id}").status_code == 204
    assert Thing.select().count() == 0 and ThingMapping.select().count() == 0
