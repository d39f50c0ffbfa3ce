"""A worker is SIGKILLed while it holds prefetched poll tasks (and one it is running). Another
worker polls its clients soon, no client is fetched by two polls at once, and `thingbridge
worker` starts a new Celery process. (The broker hands the dead worker's tasks out again only
after the visibility timeout: tests/workers/test_polling.py shows such a stale copy does
nothing.)"""

from __future__ import annotations

import re

import requests
from conftest import assert_consistent, max_in_flight, next_reading
from helpers import wait_until
from stack import DISPATCH_INTERVAL, EVER, POLL_INTERVAL, TASK_LEASE, kill_group

CLIENTS = 12
PROVIDER_DELAY = 1.0  # seconds each provider call takes: work queues up behind it
# A prefetched poll's client is claimed for at most a poll interval; one the worker was polling
# is held for TASK_LEASE. Then the dispatcher's next sweep sends it to a live worker.
KILL_BOUND = max(POLL_INTERVAL, TASK_LEASE) + DISPATCH_INTERVAL + PROVIDER_DELAY
assert KILL_BOUND <= 2 * POLL_INTERVAL + PROVIDER_DELAY  # "within two poll intervals"


def _held(process) -> int:
    """Poll tasks a worker received and has not finished, from its log."""
    log = process.log.read_text(errors="replace")
    received = set(re.findall(r"Task thingbridge\.poll_client\[([0-9a-f-]+)\] received", log))
    finished = set(re.findall(r"Task thingbridge\.poll_client\[([0-9a-f-]+)\] "
                              r"(?:succeeded|failed|retry)", log))
    return len(received - finished)


def test_sigkilled_worker_clients_are_polled_again_soon_and_once(stack, owm_sim):
    requests.post(f"{owm_sim}/_sim/control", json={"timeout_seconds": PROVIDER_DELAY},
                  timeout=5)
    stack.start_api()
    stack.start_beat()
    victim = stack.start_worker("victim", "--concurrency=1")  # runs 1, prefetches 4 more
    stack.create_app()
    client_ids = stack.connect_clients(CLIENTS)
    stack.wait_all_polled(client_ids, EVER, 60, "first polls")
    next_reading(owm_sim, 2)
    # Alone, the victim cannot keep up (12 polls every 4 s, 1 s each), so it holds polls it
    # prefetched; the survivor starts only then. Started first, it would take most polls and
    # whether the victim ever held several at once would be up to the broker's timing. (Its
    # prefetch of 4 is shared with beat's tasks, which it takes from the other queue in turn.)
    wait_until(lambda: _held(victim) >= 2, timeout=30, interval=0.05,
               message="the victim holding prefetched polls")
    celery = victim.celery()
    survivor = stack.start_worker("survivor", "--concurrency=4")  # can poll them all
    wait_until(lambda: "ready" in survivor.log.read_text(errors="replace"), timeout=60,
               interval=0.05, message="survivor ready")
    # Now both take tasks, so the victim's prefetch drains: one it runs and one waiting is the
    # case to kill (waiting for three again failed when the survivor drained it for 30 s).
    wait_until(lambda: _held(victim) >= 2, timeout=30, interval=0.05,
               message="the victim still holding a prefetched poll")
    held = _held(victim)
    since = stack.db_now()
    kill_group(celery)  # the Celery worker and its pool; its supervisor lives on
    recovery = stack.wait_all_polled(client_ids, since, KILL_BOUND, "after the SIGKILL")

    restarted = wait_until(lambda: victim.children() and victim.children()[0] != celery
                           and victim.children()[0], timeout=30, message="a new Celery process")
    assert max_in_flight(owm_sim) == 1  # never two fetches of one client at once
    counts = assert_consistent(stack, client_ids)
    print(f"\nSIGKILL of a worker holding {held} poll tasks: all {CLIENTS} clients polled "
          f"again after {recovery:.1f} s (bound {KILL_BOUND:.0f} s); new Celery process "
          f"{restarted}; {counts}")
