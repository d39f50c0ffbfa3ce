"""Dependencies that stop answering without going away, under `thingbridge api`: a database
statement stuck behind a lock held elsewhere, a broker that accepts connections and never
answers. Each request that meets one answers within a bound, having written nothing it cannot
stand by, and the requests that do not need it are answered meanwhile. Before, each held its
sync worker until the dependency let go or gunicorn ended the worker (no answer at all)."""

from __future__ import annotations

import psycopg
import requests
from broker_helpers import free_port
from flows import CLIENTS, owm_instance
from helpers import DATABASE_URL, LAMP
from worker_fixtures import listening

from thingbridge.models import ConnectorClient, Thing


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
