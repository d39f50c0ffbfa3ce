"""Deleting a connector client, as the contract words it: if removing its things fails, 500
and the client stays; deleting again succeeds (204). A delete while the client's first poll is
in flight leaves no orphan thing behind."""

from __future__ import annotations

import threading

import pytest
import requests
from flows import CLIENTS, owm_client, owm_instance, sim_stats, wait_status
from helpers import wait_until

from thingbridge.db import db
from thingbridge.models import ConnectorClient, Thing, ThingMapping


@pytest.fixture
def refusing_thing_deletes():
    """A PostgreSQL trigger that makes deleting a thing fail, as a database error would."""
    db.execute_sql("""
        CREATE FUNCTION test_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'thing deletion refused (test)'; END $$;
        CREATE TRIGGER test_refuse_delete BEFORE DELETE ON thing
        FOR EACH ROW EXECUTE FUNCTION test_refuse_delete();""")

    def lift():
        db.execute_sql("DROP TRIGGER IF EXISTS test_refuse_delete ON thing;"
                       "DROP FUNCTION IF EXISTS test_refuse_delete();")

    yield lift
    lift()


def test_a_failed_delete_is_500_and_keeps_the_client_then_a_retry_is_204(
        api, owm_sim, start_worker, refusing_thing_deletes):
    start_worker()
    client_id = owm_client(api)
    wait_status(client_id, "STARTED")
    resp = api.delete(f"{CLIENTS}/{client_id}")
    assert resp.status_code == 500 and resp.json["status"] == 500
    assert "refused (test)" not in str(resp.json)  # no internals in the body
    # Nothing half done: the client is still there and active, with its thing.
    assert api.get(f"{CLIENTS}/{client_id}").json["status"] == "STARTED"
    assert Thing.select().count() == 1 and ThingMapping.select().count() == 1

    refusing_thing_deletes()
    assert api.delete(f"{CLIENTS}/{client_id}").status_code == 204
    assert api.get(f"{CLIENTS}/{client_id}").status_code == 404
    assert Thing.select().count() == 0 and ThingMapping.select().count() == 0


def test_delete_during_the_first_poll_leaves_no_orphan_thing(api, owm_sim, flask_app):
    """The poll runs as a worker runs it, in a thread here so the test can wait for its
    outcome: deleted while the provider call is in flight, it writes nothing."""
    from thingbridge_workers.polling import poll

    owm_instance(api)
    calls = sim_stats(owm_sim)["calls"]
    # The provider answers after 2 s (within the 3 s HTTP timeout): time to delete.
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "timeout", "timeout_seconds": 2},
                  timeout=5).raise_for_status()
    client_id = owm_client(api)
    outcome = []

    def first_poll():
        with flask_app.app_context(), db.connection_context():
            outcome.append(poll(client_id))

    worker = threading.Thread(target=first_poll)
    worker.start()
    wait_until(lambda: sim_stats(owm_sim)["calls"] > calls,
               message="first poll in flight")
    assert api.delete(f"{CLIENTS}/{client_id}").status_code == 204
    worker.join()
    stats = sim_stats(owm_sim)
    assert stats["responses_by_status"]["200"] == 2  # the key check, and the poll's answer
    assert outcome == ["gone"]
    assert Thing.select().count() == 0 and ThingMapping.select().count() == 0
    assert ConnectorClient.select().count() == 0
