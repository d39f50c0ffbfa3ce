"""Dependencies that stop answering without going away, under `thingbridge api`: a database
statement stuck behind a lock held elsewhere, a broker that accepts connections and never
answers. Each request that meets one answers within a bound, having written nothing it cannot
stand by, and the requests that do not need it are answered meanwhile. Before, each held its
sync worker until the dependency let go or gunicorn ended the worker (no answer at all)."""

from __future__ import annotations

import json
import threading
from urllib.parse import urlsplit

import psycopg
import requests
from broker_helpers import free_port
from flows import CLIENTS, decided, netatmo_instance, owm_instance, poll_due, sim_stats
from helpers import DATABASE_URL, LAMP, wait_until
from worker_fixtures import listening

from thingbridge.actions import signing
from thingbridge.db import utcnow
from thingbridge.models import ActionRequest, ConnectorClient, Thing


def test_a_request_behind_a_held_lock_is_a_503_that_wrote_nothing(run, api):
    """The server ends the statement at THINGBRIDGE_DATABASE_STATEMENT_TIMEOUT: 503
    DATABASE_BUSY, nothing written."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run("api", "--port", str(port), "--workers", "2",
        env={"THINGBRIDGE_DATABASE_STATEMENT_TIMEOUT": "1"})
    listening(base)
    headers = {"Authorization": f"Bearer {api.token}", "X-External-Subject-Id": "alice"}
    assert requests.post(f"{base}/api/v1/things", json=LAMP, headers=headers,
                         timeout=20).status_code == 201
    holder = psycopg.connect(DATABASE_URL)
    try:
        holder.execute('LOCK TABLE "thing" IN ACCESS EXCLUSIVE MODE')  # until rolled back
        for method, kwargs in (("GET", {}), ("POST", {"json": LAMP})):
            busy = requests.request(method, f"{base}/api/v1/things", headers=headers,
                                    timeout=20, **kwargs)
            assert busy.status_code == 503, busy.text
            assert busy.json()["error"] == "DATABASE_BUSY"
            assert busy.headers["Retry-After"] == "5"
        assert requests.get(f"{base}/api/v1/connectors/descriptions",
                            timeout=20).status_code == 200
    finally:
        holder.rollback()
        holder.close()
    assert Thing.select().count() == 1  # the busy POST created nothing
    listed = requests.get(f"{base}/api/v1/things", headers=headers, timeout=20)
    assert listed.status_code == 200 and len(listed.json()) == 1


def test_a_broker_that_never_answers_costs_one_write_seconds_and_the_rest_nothing(
        run, api, servers, clean_db):
    """Writes whose work is recorded in the database (a new client is due now) commit and
    answer 201; the first waits out the broker's socket timeout, then the process leaves such
    sends to the dispatcher for a while. /health says the broker fails."""
    silent = servers(lambda conn: conn.recv(65536) and conn.recv(65536))  # reads, never answers
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run("api", "--port", str(port), "--workers", "1",
        env={"THINGBRIDGE_BROKER_URL": f"redis://127.0.0.1:{silent.port}/0"})
    listening(base)
    owm_instance(api)
    for subject in ("alice", "bob", "carol"):
        created = requests.post(f"{base}{CLIENTS}", timeout=60, headers={
            "Authorization": f"Bearer {api.token}", "X-External-Subject-Id": subject}, json={
            "connector_type_id": "openweathermap", "configuration": {"city": "Berlin"}})
        assert created.status_code == 201, created.text
        if subject == "alice":
            tried = silent.connections  # the first write's attempts
            assert tried >= 1
    assert silent.connections == tried  # the next writes did not try the broker again
    assert ConnectorClient.select().where(ConnectorClient.next_poll_at.is_null(False)).count() \
        == 3  # due: the dispatcher sends them once the broker answers
    health = requests.get(f"{base}/health", timeout=60)
    assert health.status_code == 503 and health.json()["checks"]["broker"]["status"] == "error"
    assert silent.connections == tried  # nor did /health: the process knows it failed


def _connected_netatmo_thing(api) -> tuple[str, Thing]:
    """A Netatmo client with its things, polled in this process."""
    netatmo_instance(api)
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    api.http.get(decided(created.headers["Location"]))
    assert poll_due(created.json["client_id"]) == "ok"
    return created.json["client_id"], Thing.get(Thing.display_type == "THERMOSTAT")


def test_a_connector_action_whose_token_refresh_meets_a_held_lock_fails_for_good(
        run, api, netatmo_sim):
    """The client's row is locked elsewhere (a worker refreshing its token) past the statement
    timeout, before the provider is called: the request id is recorded FAILED, not performed
    (502, and the same for a retry), not left PENDING to answer "still being performed" until
    it expires as a timeout."""
    client_id, room = _connected_netatmo_thing(api)
    key = api.post("/api/v1/actions/callback/register",
                   json={"CallbackUrl": "https://app.example.com/cb"}).json["signingKey"]
    href = api.get("/api/v1/connectors/callbackurl").json["href"]
    ConnectorClient.update(token_expires_at=utcnow()).where(
        ConnectorClient.id == client_id).execute()  # the action refreshes the token first
    port = free_port()
    run("api", "--port", str(port), "--workers", "2",
        env={"THINGBRIDGE_DATABASE_STATEMENT_TIMEOUT": "1"})
    listening(f"http://127.0.0.1:{port}")
    body = json.dumps({"id": "r1", "thingId": room.id, "componentId": "thermostat",
                       "actionId": "setRoomThermPoint", "parameters": {"mode": "max"}}).encode()

    def post():
        date = signing.http_date()
        return requests.post(f"http://127.0.0.1:{port}{urlsplit(href).path}", data=body,
                             timeout=30, headers={
                                 "Content-Type": "application/json", "Date": date,
                                 signing.SIGNATURE_HEADER: signing.signature(
                                     key, "POST", href, date, body)})

    holder = psycopg.connect(DATABASE_URL)
    try:
        holder.execute("SELECT 1 FROM connector_client WHERE id = %s FOR UPDATE", (client_id,))
        answers = [post(), post()]
    finally:
        holder.rollback()
        holder.close()
    for answer in answers:
        assert answer.status_code == 502, answer.text
        assert answer.json()["error"] == "PROVIDER_UNAVAILABLE"
        assert "nothing was performed" in answer.json()["description"]
    assert ActionRequest.get(ActionRequest.external_id == "r1").status == "FAILED"
    calls = sim_stats(netatmo_sim)["setroomthermpoint_calls"]
    assert calls == []


def test_a_consent_whose_grant_meets_a_held_lock_keeps_it(run, api, netatmo_sim):
    """The state is used and the code exchanged before the grant is stored: a lock on the
    client's row past the statement timeout is waited out (the grant exists nowhere else)
    instead of a 503 after which the link says it was already used."""
    netatmo_instance(api)
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    client_id = created.json["client_id"]
    callback = decided(created.headers["Location"])
    port = free_port()
    run("api", "--port", str(port), "--workers", "2",
        env={"THINGBRIDGE_DATABASE_STATEMENT_TIMEOUT": "1"})
    listening(f"http://127.0.0.1:{port}")
    holder, probe = psycopg.connect(DATABASE_URL), psycopg.connect(DATABASE_URL, autocommit=True)
    answer = []
    try:
        holder.execute("SELECT 1 FROM connector_client WHERE id = %s FOR UPDATE", (client_id,))
        landing = threading.Thread(target=lambda: answer.append(requests.get(
            f"http://127.0.0.1:{port}{callback}", allow_redirects=False, timeout=60)))
        landing.start()
        # The grant's write waits on the lock, is ended at the statement timeout and waits
        # again (a second statement): then let go.
        waits = set()

        def waiting_again():
            waits.update(probe.execute("SELECT query_start FROM pg_stat_activity WHERE "
                                       "wait_event_type = 'Lock'").fetchall())
            return len(waits) >= 2

        wait_until(waiting_again, message="the grant's write waiting a second time")
    finally:
        holder.rollback()
        holder.close()
        probe.close()
    landing.join(60)
    assert answer[0].status_code == 302 and "status=STARTING" in answer[0].headers["Location"]
    assert ConnectorClient.get_by_id(client_id).tokens
