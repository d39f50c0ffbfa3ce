"""Real Celery workers on Redis + PostgreSQL poll the simulators into things."""

from __future__ import annotations

import datetime
import inspect

import pytest
import requests
from flows import (
    CLIENTS,
    client_row,
    owm_client,
    owm_instance,
    poll_due,
    repoll,
    sim_stats,
    wait_status,
)
from helpers import OTHER_KEY, OWM_KEY, Statements, wait_until, waiting_on
from raw_receivers import answering
from worker_fixtures import VISIBILITY_TIMEOUT, unacked_visible

import thingbridge_openweathermap.client as owm_client_module
from thingbridge import backoff
from thingbridge.connectors import lifecycle
from thingbridge.db import utcnow
from thingbridge.limits import window
from thingbridge.models import ConnectorClient, ConnectorInstance, Property, Thing, ThingMapping
from thingbridge.outbox import events


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
    # The first backoff is RETRY_BASE give or take backoff.delay's spread, counted from the
    # failed poll (both stamps are written together).
    delay = (client.next_poll_at - client.last_polled_at).total_seconds()
    spread = inspect.signature(backoff.delay).parameters["spread"].default
    assert lifecycle.RETRY_BASE * (1 - spread) <= delay <= lifecycle.RETRY_BASE * (1 + spread)


def test_an_answer_the_connector_cannot_read_backs_off_with_a_reason(api, flask_app, servers,
                                                                    monkeypatch):
    """A provider answering a shape the mapping does not expect (a number for "wind") is the
    plugin raising outside its contract: a transient failure, not a crashed task whose client
    waits out its lease and is polled again at full speed, forever, with no reason given."""
    from thingbridge_workers.polling import poll

    client_id = owm_client(api)
    assert poll(client_id, "first") == "ok"
    lying = servers(answering(b"200 OK", b"Content-Type: application/json\r\n",
                              b'{"main": {"temp": 5}, "wind": 5}'))
    monkeypatch.setitem(flask_app.config, "OPENWEATHERMAP_BASE_URL",
                        f"http://127.0.0.1:{lying.port}")
    ConnectorClient.update(next_poll_at=utcnow()).where(
        ConnectorClient.id == client_id).execute()
    assert poll(client_id, "second") == "exception"
    client = client_row(client_id)
    assert (client.status, client.failure_count, client.lease_token) == ("STARTED", 1, None)
    assert client.status_reason == ("the openweathermap connector could not read the "
                                    "provider's answer (AttributeError)")
    assert client.next_poll_at > client.last_polled_at  # backed off
    assert lying.connections == 1


@pytest.mark.parametrize("text, stored", [
    ("a\\u0000b", "a\ufffdb"), ("\\ud800x", "\ufffdx"), ("n" * 300, "n" * 300),
    ("\\ud83d\\ude00", "\U0001f600")],  # a surrogate pair is one character, kept
    ids=["nul", "lone-surrogate", "too-long", "surrogate-pair"])
def test_provider_text_that_cannot_be_stored_is_mended(api, flask_app, servers, monkeypatch,
                                                       text, stored):
    """A NUL, a lone surrogate or a name longer than its column: the database refused them, the
    poll crashed and the client was retried at lease speed for ever. Now stored mended."""
    from thingbridge_workers.polling import poll

    client_id = owm_client(api)
    # As JSON text: the escapes are the provider's, not json.dumps's.
    body = f'{{"main": {{"temp": 5}}, "name": "{text}", "weather": [{{"description": "{text}"}}]}}'
    lying = servers(answering(b"200 OK", b"Content-Type: application/json\r\n", body.encode()))
    monkeypatch.setitem(flask_app.config, "OPENWEATHERMAP_BASE_URL",
                        f"http://127.0.0.1:{lying.port}")
    assert poll(client_id, "first") == "ok"
    thing = Thing.get(Thing.connector_client == client_id)
    assert thing.name == f"Weather {stored}"[:255]  # the column's length
    assert Property.get(Property.property_id == "description").value == stored


def test_a_providers_error_text_is_kept_short_and_storable(api, flask_app, servers,
                                                           monkeypatch):
    """A reason quotes the provider: 2 MB of it went into the client, the API and an event,
    and a NUL in it made the status change fail to store."""
    from thingbridge_workers.polling import poll

    client_id = owm_client(api)
    body = b'{"message": "bad key \\u0000' + b"x" * 2_000_000 + b'"}'
    lying = servers(answering(b"401 Unauthorized", b"Content-Type: application/json\r\n", body))
    monkeypatch.setitem(flask_app.config, "OPENWEATHERMAP_BASE_URL",
                        f"http://127.0.0.1:{lying.port}")
    assert poll(client_id, "first") == "error"
    client = client_row(client_id)
    assert client.status == "ERROR"
    assert client.status_reason.startswith("the provider refused the connector instance's")
    assert ": invalid OpenWeatherMap app key: bad key \ufffdx" in client.status_reason
    assert len(client.status_reason) == 500


@pytest.mark.parametrize("what, rename", [
    ("component id: 'temp\\nerature'",
     lambda spec: setattr(spec.components[0], "id", "temp\nerature")),
    ("thing id: ", lambda spec: setattr(spec, "connector_thing_id",
                                        spec.connector_thing_id + "\x1b[2J"))],
    ids=["component", "thing"])
def test_an_id_mapped_from_the_provider_that_is_not_one_fails_the_poll(api, monkeypatch, what,
                                                                      rename):
    """A thing's id is any printable text, the others follow the documented id pattern."""
    from thingbridge_openweathermap.connector import OpenWeatherMapConnector
    from thingbridge_workers.polling import poll

    client_id = owm_client(api)
    assert poll(client_id, "first") == "ok"
    mapped = OpenWeatherMapConnector.map_things

    def renamed(self, payload, config):
        specs = mapped(self, payload, config)
        rename(specs[0])
        return specs

    monkeypatch.setattr(OpenWeatherMapConnector, "map_things", renamed)
    ConnectorClient.update(next_poll_at=utcnow()).where(
        ConnectorClient.id == client_id).execute()
    assert poll(client_id, "second") == "exception"
    client = client_row(client_id)
    assert client.status == "STARTED" and client.failure_count == 1
    assert client.status_reason.startswith(
        f"the openweathermap connector mapped an invalid {what}")
    assert {c.component_id for c in Thing.get(Thing.connector_client == client_id).components
            } >= {"temperature"}  # nothing deleted or renamed


def test_a_thing_listed_twice_is_written_once(api, monkeypatch):
    """The database refused the second (its mapping is unique): the poll crashed every time."""
    from thingbridge_openweathermap.connector import OpenWeatherMapConnector
    from thingbridge_workers.polling import poll

    mapped = OpenWeatherMapConnector.map_things
    monkeypatch.setattr(OpenWeatherMapConnector, "map_things",
                        lambda self, payload, config: mapped(self, payload, config) * 2)
    client_id = owm_client(api)
    assert poll(client_id, "first") == "ok"
    assert Thing.select().where(Thing.connector_client == client_id).count() == 1


def test_rate_limit_429_honors_retry_after(api, owm_sim, start_worker):
    start_worker()
    owm_instance(api)
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "rate_limited"}, timeout=5)
    client_id = owm_client(api)
    client = wait_until(lambda: client_row(client_id).failure_count == 1 and client_row(client_id),
                        message="throttled")
    assert client.status == "STARTING"
    # OpenWeatherMap's 429 has no Retry-After: the connector's default is the floor, and it
    # outweighs the first (jittered) backoff.
    delay = (client.next_poll_at - client.last_polled_at).total_seconds()
    assert delay == owm_client_module.DEFAULT_RETRY_AFTER


def test_revoked_key_is_error_with_reason(api, owm_sim, start_worker):
    start_worker()
    client_id = owm_client(api)
    wait_status(client_id, "STARTED")
    requests.post(f"{owm_sim}/_sim/control", json={"revoked_keys": [OWM_KEY]}, timeout=5)
    repoll(client_id)
    client = wait_status(client_id, "ERROR")
    assert "invalid OpenWeatherMap app key" in client.status_reason
    assert client.next_poll_at is None



def test_a_refusal_of_a_configuration_replaced_meanwhile_stops_nothing(api, owm_sim,
                                                                       monkeypatch):
    """The app repairs its instance (a new key) while a poll with the old key waits for the
    provider: the provider's refusal of the old key does not stop the client (nothing would
    start it again: the repair found it STARTED), and it is polled again at once with the new
    key."""
    from thingbridge_workers.polling import poll

    client_id = owm_client(api)
    assert poll_due(client_id) == "ok"
    requests.post(f"{owm_sim}/_sim/control", json={"revoked_keys": [OWM_KEY]}, timeout=5)
    instance = ConnectorInstance.get(ConnectorInstance.app == api.model.id)
    fetch, keys = owm_client_module.current_weather, []

    def repaired_meanwhile(session, base_url, app_key, *args, **kwargs):
        keys.append(app_key)
        if len(keys) == 1:  # the poll's call; the PATCH checks the new key with a call too
            resp = api.patch(f"/api/v1/connectors/instances/{instance.id}",
                             json={"configuration": {"app_key": OTHER_KEY}})
            assert resp.status_code == 200, resp.json
        return fetch(session, base_url, app_key, *args, **kwargs)

    monkeypatch.setattr(owm_client_module, "current_weather", repaired_meanwhile)
    assert poll_due(client_id) == "retry"
    client = client_row(client_id)
    assert (client.status, client.failure_count, client.lease_token) == ("STARTED", 0, None)
    assert client.next_poll_at <= utcnow()  # due again
    assert poll(client_id) == "ok"
    assert keys == [OWM_KEY, OTHER_KEY, OTHER_KEY]  # the poll's, the PATCH's check, the poll's
    assert client_row(client_id).status == "STARTED"


def test_a_refusal_waits_for_a_repair_under_way(api, owm_sim, flask_app):
    """The repair has written the new key but not committed yet when the provider's refusal
    of the old one comes back: the poll waits for the repair and finds the new key, rather
    than stop the client after the repair looked for stopped clients."""
    client_id = owm_client(api)
    assert poll_due(client_id) == "ok"
    requests.post(f"{owm_sim}/_sim/control", json={"revoked_keys": [OWM_KEY]}, timeout=5)
    instance = ConnectorInstance.get(ConnectorInstance.app == api.model.id)
    stored = ConnectorInstance.configuration.db_value({"app_key": OTHER_KEY})
    with waiting_on(flask_app, "UPDATE connector_instance SET configuration = %s WHERE id = %s",
                    (stored, instance.id), lambda: poll_due(client_id), "SELECT") as (_, said):
        pass
    assert said == ["retry"]
    assert client_row(client_id).status == "STARTED"


def test_a_refusal_of_a_client_configuration_changed_meanwhile_stops_nothing(api, owm_sim,
                                                                             monkeypatch):
    """The same for the client's own configuration: the app moves the client to a location
    the provider knows while a poll for the old one waits for the provider's 404."""
    from thingbridge_workers.polling import poll

    client_id = owm_client(api)
    ConnectorClient.update(configuration={"city": "Atlantis"}).where(
        ConnectorClient.id == client_id).execute()  # accepted once, unknown to the provider now
    fetch, cities = owm_client_module.current_weather, []

    def changed_meanwhile(session, base_url, app_key, location, *args, **kwargs):
        cities.append(location.get("q"))
        if len(cities) == 1:
            resp = api.patch(f"{CLIENTS}/{client_id}", json={"configuration": {"city": "Paris"}})
            assert resp.status_code == 200, resp.json
        return fetch(session, base_url, app_key, location, *args, **kwargs)

    monkeypatch.setattr(owm_client_module, "current_weather", changed_meanwhile)
    assert poll_due(client_id) == "retry"
    client = client_row(client_id)
    assert (client.status, client.next_poll_at <= utcnow()) == ("STARTING", True)
    assert poll(client_id) == "ok" and client_row(client_id).status == "STARTED"
    assert cities[0] == "Atlantis" and cities[-1] == "Paris"

def _postponed(client_id) -> ConnectorClient | None:
    """The worker's recorded rate-limited outcome: never polled, no failure counted, next poll
    in the future (a new client is due at once)."""
    client = client_row(client_id)
    due = client.next_poll_at
    if (client.last_success_at is None and client.failure_count == 0 and due is not None
            and due > utcnow()):
        return client
    return None


def _spend_budget(client_ids) -> ConnectorClient:
    """Poll more clients than the budget allows until one is postponed within one window. A
    minute turning between the polls opens a fresh window and lets every poll through: then
    the started ones are polled again in the new window (a window holds many polls, so the
    second round cannot be split too)."""
    from thingbridge.models import RateBudget

    for _ in range(3):
        wait_until(lambda: all(client_row(c).status == "STARTED" or _postponed(c)
                               for c in client_ids), message="every client polled or postponed")
        limited = [c for c in client_ids if _postponed(c)]
        if limited:
            [client] = [_postponed(c) for c in limited]
            [budget] = RateBudget.select()
            # Postponed to when the spent window ends, give or take lifecycle.postpone's
            # jittered 5 s (±20 %), which spreads the clients it held.
            delay = client.next_poll_at - (budget.window_start + window.WINDOW)
            assert datetime.timedelta(seconds=4) <= delay <= datetime.timedelta(seconds=6)
            return client
        for client_id in client_ids:
            repoll(client_id)
    raise AssertionError("no window held all the polls")


def test_instance_rate_budget_caps_real_polls_across_clients(api, make_app, owm_sim,
                                                             start_worker):
    """Budget N per instance: N+1 clients of one app's key are polled for real, one is
    postponed to the next window, the provider never answers 429 (it enforces the same N), and
    another app's instance has its own budget."""
    from thingbridge.models import RateBudget

    limit = 3
    owm_instance(api)
    # Creating the instance checks the key with one call the budget does not count: start the
    # provider's own count after it.
    requests.post(f"{owm_sim}/_sim/reset", timeout=5).raise_for_status()
    requests.post(f"{owm_sim}/_sim/control", json={"rate_limit_per_minute": limit},
                  timeout=5).raise_for_status()
    start_worker(env={"THINGBRIDGE_OPENWEATHERMAP_RATE_LIMIT": str(limit)})
    client_ids = [owm_client(api.as_subject(f"user{i}"), "London") for i in range(limit + 1)]
    limited = _spend_budget(client_ids)
    [budget] = RateBudget.select()
    assert budget.used == limit
    window_end = budget.window_start + window.WINDOW

    other = make_app("app-b")
    assert other.post("/api/v1/connectors/instances", json={
        "connector_type_id": "openweathermap",
        "configuration": {"app_key": OTHER_KEY}}).status_code == 201
    before = sim_stats(owm_sim)["calls_by_key"][OTHER_KEY]  # the key check at creation
    other_client = owm_client(other, "London")
    polled = wait_status(other_client, "STARTED").last_success_at
    # Only isolation lets it through while app A's window is spent.
    assert polled < window_end and _postponed(limited.id)
    stats = sim_stats(owm_sim)
    assert "429" not in stats["responses_by_status"]
    assert stats["calls_by_key"][OTHER_KEY] == before + 1


def test_rate_limit_zero_lifts_the_budget(api, owm_sim, start_worker):
    from thingbridge.models import RateBudget

    start_worker(env={"THINGBRIDGE_OPENWEATHERMAP_RATE_LIMIT": "0"})
    owm_instance(api)
    calls = sim_stats(owm_sim)["calls"]
    client_ids = [owm_client(api.as_subject(f"user{i}"), "London") for i in range(4)]
    for client_id in client_ids:
        wait_status(client_id, "STARTED")
    assert RateBudget.select().count() == 0  # no budget consulted, none counted
    assert sim_stats(owm_sim)["calls"] == calls + len(client_ids)


def test_killed_worker_mid_poll_completes_once_without_duplicates(api, owm_sim, start_worker):
    owm_instance(api)
    before = sim_stats(owm_sim)  # the key check at creation
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "timeout", "timeout_seconds": 2.5},
                  timeout=5)
    first = start_worker("doomed", concurrency=1)
    client_id = owm_client(api)
    # Wait until the worker is inside the provider call, then kill it without warning.
    wait_until(lambda: sim_stats(owm_sim)["calls"] > before["calls"], message="poll in flight")
    # Not answered yet (the simulator sleeps 2.5 s): the kill lands inside the provider call.
    assert sim_stats(owm_sim)["responses_by_status"] == before["responses_by_status"]
    first.kill()
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "ok"}, timeout=5)
    assert client_row(client_id).status == "STARTING"
    # The unacknowledged task comes back once the visibility timeout has passed: a worker
    # started after that restores it as it starts.
    wait_until(unacked_visible, timeout=VISIBILITY_TIMEOUT * 3, message="task visible again")
    start_worker("rescuer")
    client = wait_status(client_id, "STARTED")
    assert client.last_success_at is not None
    assert Thing.select().count() == 1 and ThingMapping.select().count() == 1
    # The killed call and the redelivered one; the provider was asked exactly twice.
    assert sim_stats(owm_sim)["calls"] == before["calls"] + 2


def test_a_stale_copy_of_a_poll_task_does_nothing(api, owm_sim):
    """A poll task the broker hands out again after its worker died, or one overtaken by a
    newer claim, finds its client polled since or held, and calls no provider."""
    from thingbridge_workers.dispatcher import claim_due
    from thingbridge_workers.polling import poll

    client_id = owm_client(api)
    assert poll(client_id, "first-token") == "ok"
    calls = sim_stats(owm_sim)["calls"]
    assert poll(client_id, "first-token") == "held"  # polled since: not due
    ConnectorClient.update(next_poll_at=utcnow()).where(
        ConnectorClient.id == client_id).execute()
    [claimed], token = claim_due(10)  # due again, and the dispatcher claims it
    assert claimed == client_id
    assert poll(client_id, "first-token") == "held"  # the newer claim holds it
    assert sim_stats(owm_sim)["calls"] == calls
    assert poll(client_id, token) == "ok"  # the claim's own task polls
    assert client_row(client_id).lease_token is None  # and lets go


def test_a_disabled_apps_clients_are_not_polled_until_it_is_enabled(api, make_app, owm_sim):
    """The operator disabled the app: its clients stay due but the dispatcher sends none of
    their polls (another app's go on); enabled again, they are polled where they were."""
    from thingbridge.auth import credentials
    from thingbridge_workers.dispatcher import claim_due

    stopped, other = owm_client(api), owm_client(make_app("other"))
    broken = owm_client(api.as_subject("bob"))
    ConnectorClient.update(status="ERROR", next_poll_at=None).where(
        ConnectorClient.id == broken).execute()
    credentials.disable(api.model)
    claimed, _ = claim_due(10)
    assert claimed == [other]
    assert client_row(stopped).next_poll_at is None  # off the schedule: never walked past
    # A poll under way when the app was disabled schedules its next: still not claimed.
    ConnectorClient.update(next_poll_at=utcnow()).where(ConnectorClient.id == stopped).execute()
    assert claim_due(10)[0] == []
    credentials.enable(api.model)
    claimed, _ = claim_due(10)
    assert claimed == [stopped]
    assert client_row(broken).next_poll_at is None  # an ERROR waits for its repair


def test_delete_client_deletes_its_things(api, owm_sim, start_worker):
    start_worker()
    client_id = owm_client(api)
    wait_status(client_id, "STARTED")
    assert Thing.select().count() == 1
    assert api.delete(f"{CLIENTS}/{client_id}").status_code == 204
    assert Thing.select().count() == 0 and ThingMapping.select().count() == 0


def test_a_poll_bringing_new_readings_only_is_one_statement_after_the_read(api, owm_sim,
                                                                           monkeypatch):
    """The poll every client makes every ten minutes: after the fetch and the read of its stored
    things, one statement records the poll, writes the readings and appends their events; no
    transaction."""
    from thingbridge_workers.polling import poll

    def pin(bucket):
        requests.post(f"{owm_sim}/_sim/control", json={"reading_bucket": bucket}, timeout=5)

    pin(1)
    client_id = owm_client(api)
    assert poll_due(client_id) == "ok" and client_row(client_id).status == "STARTED"
    before = {p.id: p.value for p in Property.select()}
    pin(2)
    ConnectorClient.update(next_poll_at=utcnow()).where(ConnectorClient.id == client_id).execute()
    statements = Statements(monkeypatch)
    assert poll(client_id) == "ok"
    # The take, the instance's provider budget, the read, the record.
    assert (len(statements.sql), statements.transactions) == (4, 0)
    changed = {p.id for p in Property.select() if p.value != before[p.id]}
    told = [e for e in events.read_after(client_row(client_id).app_id, 0, 1000)
            if e.type == "thing.property_changed"]
    assert changed and len(told) == len(changed)
    row = client_row(client_id)
    assert row.lease_token is None and row.next_poll_at > utcnow()
