"""A statement stuck behind a lock held elsewhere (a migration building an index, an operator's
open transaction) under `thingbridge api`: the server ends it at
THINGBRIDGE_DATABASE_STATEMENT_TIMEOUT and the request answers 503 DATABASE_BUSY having written
nothing, while requests that need no such lock are answered. Without the bound the request
held its worker until the lock went or gunicorn ended the worker (no answer at all)."""

from __future__ import annotations

import psycopg
import requests
from broker_helpers import free_port
from helpers import DATABASE_URL, LAMP
from worker_fixtures import listening

from thingbridge.models import Thing


def test_a_request_behind_a_held_lock_is_a_503_that_wrote_nothing(run, api):
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
