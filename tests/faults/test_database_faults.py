"""The database goes away under a running platform: its sessions are killed, it restarts, it
is down for a while. Nobody restarts anything by hand; polls, events and webhooks carry on."""

from __future__ import annotations

import time
from collections import Counter

import requests
from conftest import assert_consistent, max_in_flight, next_reading
from helpers import wait_until
from stack import DISPATCH_INTERVAL, EVER, POLL_INTERVAL, TASK_LEASE

CLIENTS = 12
# A connection killed under a worker is replaced by the statement that finds it: the clients
# keep their cadence, each polled again within two poll intervals.
TERMINATED_BOUND = 2 * POLL_INTERVAL
# After a restart, a poll that failed holds its client until its Celery retry (1 s, doubling)
# or its lease runs out; the dispatcher then sends it within its next sweeps.
RESTART_BOUND = TASK_LEASE + 2 * POLL_INTERVAL + DISPATCH_INTERVAL


def _running(stack) -> list[str]:
    stack.start_api()
    stack.start_worker("worker", "--concurrency=2")
    stack.start_beat()
    stack.create_app()
    client_ids = stack.connect_clients(CLIENTS)
    stack.wait_all_polled(client_ids, EVER, 60, "first polls")
    return client_ids


def test_worker_sessions_terminated_heal_without_a_missed_poll(stack, owm_sim):
    client_ids = _running(stack)
    recoveries = []
    for bucket in (2, 3, 4):
        next_reading(owm_sim, bucket)  # the next polls write values and events
        killed = stack.cluster.terminate("thingbridge-worker")
        assert killed >= 1  # the worker held connections, and lost them all
        since = stack.db_now()
        recoveries.append(stack.wait_all_polled(client_ids, since, TERMINATED_BOUND,
                                                f"after terminating {killed} sessions"))
    assert all(p.alive() for p in stack.processes)
    assert max_in_flight(owm_sim) == 1  # no client fetched by two polls at once
    counts = assert_consistent(stack, client_ids)
    print(f"\nsessions terminated 3 times: all {CLIENTS} clients polled again after "
          f"{', '.join(f'{r:.1f}' for r in recoveries)} s (bound {TERMINATED_BOUND} s); {counts}")


def test_database_restart_and_outage_answer_503_then_recover(stack, owm_sim):
    client_ids = _running(stack)
    next_reading(owm_sim, 2)
    away = stack.cluster.restart()
    since = stack.db_now()
    first = stack.call("GET", "/api/v1/connectors/clients", "subject-0")
    assert first.status_code == 200, first.text  # the first request after a restart works
    restart_recovery = stack.wait_all_polled(client_ids, since, RESTART_BOUND, "after restart")

    # A run of webhooks sent when the database goes away for longer than what is left of its
    # lane's lease (5 s here) is sent again when the lane is taken over (at least once:
    # receivers dedupe on webhook-id); the outage starts with the lanes idle, so the check
    # below can insist that nothing was sent twice.
    stack.wait_delivered()
    stack.cluster.stop()
    outage_started = time.monotonic()
    down = stack.call("GET", "/api/v1/connectors/clients", "subject-0")
    assert down.status_code == 503, down.text
    assert down.headers["Retry-After"].isdigit()
    assert down.json()["error"] == "SERVICE_UNAVAILABLE" and down.json()["status"] == 503
    health = requests.get(f"{stack.api_url}/health", timeout=30)
    assert health.status_code == 503
    assert health.json()["checks"]["database"]["status"] == "error"
    assert health.json()["checks"]["broker"]["status"] == "ok"
    created = stack.call("POST", "/api/v1/connectors/clients", "subject-new", json={
        "connector_type_id": "openweathermap", "configuration": {"lat": 1.0, "lon": 2.0}})
    assert created.status_code == 503  # nothing was written: retrying later is safe
    time.sleep(POLL_INTERVAL)  # an outage long enough for every client to fall due
    next_reading(owm_sim, 3)
    stack.cluster.start()
    outage = time.monotonic() - outage_started
    since = stack.db_now()
    wait_until(lambda: requests.get(f"{stack.api_url}/health", timeout=30).status_code == 200,
               timeout=30, message="healthy again")
    outage_recovery = stack.wait_all_polled(client_ids, since, RESTART_BOUND, "after outage")
    client_ids.append(stack.create_client("subject-new", 1.0))  # the retry succeeds
    stack.wait_all_polled(client_ids, since, RESTART_BOUND, "the new client too")

    assert all(p.alive() for p in stack.processes)
    assert max_in_flight(owm_sim) == 1
    counts = assert_consistent(stack, client_ids)
    # A periodic task that met the database gone said so once per worker process and absence
    # (the restart, the outage), then that it was back, rather than a traceback every run.
    for process in stack.processes:
        lines = process.log.read_text(errors="replace").splitlines()
        assert not [line for line in lines if "raised unexpected: DatabaseUnavailable" in line]
        said, back = (Counter(_task_in(line) for line in lines if line.endswith(end))
                      for end in ("skipped until the database is back", ": the database is back"))
        assert all(count <= 2 and back[key] <= count for key, count in said.items()), said
        assert back.keys() <= said.keys()
    print(f"\nrestart ({away:.1f} s away): all clients polled again {restart_recovery:.1f} s "
          f"after; outage of {outage:.1f} s: {outage_recovery:.1f} s after it ended "
          f"(bound {RESTART_BOUND} s); {counts}")


def _task_in(line: str) -> tuple[str, str]:
    """(pool process, task name) of a worker log line "[time: LEVEL/process] name: ..."."""
    head, _, text = line.partition("] ")
    return head.rsplit("/", 1)[-1], text.split(":", 1)[0]
