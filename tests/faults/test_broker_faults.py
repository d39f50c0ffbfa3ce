"""The broker (Redis) goes away: restarted under a worker with tasks in flight, or down while
the API takes writes. Workers reconnect, and nothing the API accepted waits on the broker."""

from __future__ import annotations

import time

import requests
from conftest import assert_consistent, max_in_flight, next_reading
from flows import sim_stats
from helpers import LAMP, wait_until
from stack import DISPATCH_INTERVAL, EVER, POLL_INTERVAL, TASK_LEASE

CLIENTS = 12
# Celery reconnects 2 s after losing the broker (then 4 s, 6 s, ...); a poll lost with the
# broker's connection holds its client until its lease runs out, then the dispatcher sends it.
BROKER_BOUND = 2 + 4 + TASK_LEASE + 2 * DISPATCH_INTERVAL + POLL_INTERVAL


def test_broker_restart_with_tasks_in_flight_keeps_the_worker(stack, owm_sim, broker):
    requests.post(f"{owm_sim}/_sim/control", json={"timeout_seconds": 1.0}, timeout=5)
    stack.start_api()
    worker = stack.start_worker("worker", "--pool=threads", "--concurrency=4")
    beat = stack.start_beat()
    stack.create_app()
    client_ids = stack.connect_clients(CLIENTS)
    stack.wait_all_polled(client_ids, EVER, 60, "first polls")
    celery = worker.celery()
    wait_until(lambda: sim_stats(owm_sim)["calls"] > 2 * CLIENTS, message="polls in flight")

    next_reading(owm_sim, 2)
    broker.kill()  # SIGKILL: tasks running, prefetched and queued
    time.sleep(2)
    broker.start()  # the same data directory: what was acknowledged to be queued is back
    since = stack.db_now()
    recovery = stack.wait_all_polled(client_ids, since, BROKER_BOUND, "after broker restart")

    assert worker.children() == [celery]  # the same Celery process: it reconnected, no crash
    assert beat.alive() and worker.alive()
    assert max_in_flight(owm_sim) == 1
    counts = assert_consistent(stack, client_ids)
    print(f"\nbroker restart (2 s down): all {CLIENTS} clients polled again {recovery:.1f} s "
          f"after it was back (bound {BROKER_BOUND} s); {counts}")


def test_api_writes_while_its_broker_is_down_are_done_when_it_is_back(stack, owm_sim, broker):
    stack.start_api()
    stack.start_worker("worker", "--concurrency=2")
    stack.start_beat()
    stack.create_app()
    client_ids = stack.connect_clients(2)
    assert stack.call("POST", "/api/v1/actions/callback/register", json={
        "CallbackUrl": f"{stack.receiver_server.url}/actions"}).status_code == 200
    lamp = stack.call("POST", "/api/v1/things", "subject-0", json=LAMP)
    assert lamp.status_code == 201, lamp.text
    stack.wait_all_polled(client_ids, EVER, 60, "first polls")

    broker.kill()
    started = time.monotonic()
    created = stack.call("POST", "/api/v1/connectors/clients", "subject-late", json={
        "connector_type_id": "openweathermap", "configuration": {"lat": 1.0, "lon": 2.0}})
    answered_in = time.monotonic() - started
    assert created.status_code == 201, created.text  # committed, so answered as committed
    again = stack.call("POST", "/api/v1/connectors/clients", "subject-late", json={
        "connector_type_id": "openweathermap", "configuration": {"lat": 1.0, "lon": 2.0}})
    assert again.status_code == 409  # and a retry is told it exists, as for any duplicate
    action = stack.call("POST", f"/api/v1/things/{lamp.json()['Id']}/components/switch"
                                "/actions/setOn", "subject-0", json={"on": "true"})
    assert action.status_code == 201, action.text
    assert action.json()["status"] == "PENDING"
    health = requests.get(f"{stack.api_url}/health", timeout=30)
    assert health.status_code == 503 and health.json()["checks"]["broker"]["status"] == "error"
    time.sleep(2)

    broker.start()
    back = time.monotonic()
    late = created.json()["client_id"]
    client_ids.append(late)
    stack.wait_all_polled([late], EVER, BROKER_BOUND,
                          "the client created while the broker was down")
    polled_in = time.monotonic() - back
    wait_until(lambda: stack.one("SELECT status FROM action_request WHERE id = %s",
                                 action.json()["id"]) == "COMPLETED",
               timeout=BROKER_BOUND, message="action delivered")
    delivered_in = time.monotonic() - back
    assert [c["id"] for c in stack.callbacks()] == [action.json()["id"]]  # delivered once
    counts = assert_consistent(stack, client_ids)
    print(f"\nAPI with its broker down: client created in {answered_in:.1f} s (201), polled "
          f"{polled_in:.1f} s after the broker was back, action delivered after "
          f"{delivered_in:.1f} s (bound {BROKER_BOUND} s); {counts}")
