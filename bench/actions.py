"""Action round-trip benchmark: trigger setRoomThermPoint through the API -> Netatmo simulator
-> COMPLETED (the API's own first attempt; a worker runs for what it hands over), for 1,000
actions one after another; the baseline is the same simulator call made directly with
requests, one right before each action, so both meet the machine in the same state.

    .venv/bin/python bench/actions.py --actions 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import psycopg
import requests

sys.path.insert(0, os.path.dirname(__file__))
from common import (  # noqa: E402
    cpu_seconds,
    platform,
    platform_env,
    scratch_database,
    simulators,
    start_workers,
    stop,
)

WARM_UP = 200  # direct calls alone, before the paired run


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1000,
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000)


def direct_call(netatmo: str, grant: dict, home: str):
    """The baseline: one setroomthermpoint made directly with requests; its duration."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {grant['access_token']}"}

    def call(i: int) -> float:
        start = time.perf_counter()
        session.post(f"{netatmo}/api/setroomthermpoint", headers=headers, timeout=10, data={
            "home_id": home, "room_id": "2746182631", "mode": "manual",
            "temp": 18 + i % 5}).raise_for_status()
        return time.perf_counter() - start
    return call


# The bench's own trigger, in its scratch database only: each request's end is told to the
# waiting bench (LISTEN) as it commits, so the wait costs the machine nothing while the worker
# and PostgreSQL work. Reading the row every half millisecond instead (--wait poll, the method
# of the figures before 2026-12-07 noon) took a core's share from the processes it measured.
NOTIFY_ON_END = """
CREATE FUNCTION bench_action_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IN ('COMPLETED', 'FAILED', 'CANCELED') THEN
    PERFORM pg_notify('bench_action_ended', NEW.id || ' ' || NEW.status);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER bench_action_ended AFTER UPDATE OF status ON action_request
  FOR EACH ROW EXECUTE FUNCTION bench_action_ended();
"""


def polled(db, status_sql: str):
    """Wait by reading the request's row every half millisecond."""
    def wait(request_id: str) -> str:
        while True:
            status = db.db.execute_sql(status_sql, (request_id,)).fetchone()[0]
            if status != "PENDING":
                return status
            time.sleep(0.0005)
    return wait


def notified(url: str):
    """Wait for the trigger's notification of the request's end."""
    listener = psycopg.connect(url, autocommit=True)
    listener.execute(NOTIFY_ON_END)
    listener.execute("LISTEN bench_action_ended")
    ended: dict[str, str] = {}

    def wait(request_id: str) -> str:
        deadline = time.monotonic() + 60
        while request_id not in ended:
            if time.monotonic() > deadline:
                raise RuntimeError(f"action {request_id} did not end within 60 s")
            for note in listener.notifies(timeout=5, stop_after=1):
                done, status = note.payload.split(" ", 1)
                ended[done] = status
        return ended.pop(request_id)
    return wait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=1000)
    parser.add_argument("--wait", choices=("notify", "poll"), default="notify",
                        help="how the bench learns an action ended (see NOTIFY_ON_END)")
    args = parser.parse_args()
    workers = []
    with simulators("netatmo") as (sims, providers), scratch_database() as url:
        net_proc, netatmo = sims["netatmo"]
        # The in-process API keeps the outside-call slots `thingbridge api` gives its 3
        # workers (2: the first attempt of an action may take one of them).
        env = platform_env(url, THINGBRIDGE_API_OUTSIDE_CALLS="2", **providers)
        try:
            # No connection: the in-process API closes the connection after each request (as
            # under gunicorn) and autoconnect reopens it.
            with platform(env, connection=False) as app:
                from thingbridge import db
                from thingbridge.db import utcnow
                from thingbridge.models import (
                    ActionRequest,
                    App,
                    ConnectorClient,
                    ConnectorInstance,
                    Thing,
                )
                from thingbridge_workers.polling import poll

                owner, secret = App.register("bench")
                instance = ConnectorInstance.create(app=owner, type_id="netatmo", configuration={
                    "client_id": "thingbridge-demo", "client_secret": "demo-secret",
                    "origin_callback_uri": "http://localhost/x"})
                grant = requests.post(f"{netatmo}/_sim/grant",
                                      json={"client_id": "thingbridge-demo"}, timeout=10).json()
                client = ConnectorClient.create(
                    app=owner, instance=instance, type_id="netatmo", external_subject_id="alice",
                    configuration={}, next_poll_at=utcnow(),
                    tokens={k: grant[k] for k in ("access_token", "refresh_token")})
                assert poll(client.id) == "ok"
                room = Thing.get(Thing.display_type == "THERMOSTAT")
                home = room.attributes["home_id"]
                baseline = direct_call(netatmo, grant, home)

                http = app.test_client()
                token = http.post("/oauth2/token", data={
                    "grant_type": "client_credentials", "client_id": owner.client_id,
                    "client_secret": secret}).json["access_token"]
                headers = {"Authorization": f"Bearer {token}", "X-External-Subject-Id": "alice"}
                path = (f"/api/v1/things/{room.id}/components/thermostat/actions/"
                        "setRoomThermPoint")
                ended = notified(url) if args.wait == "notify" else polled(
                    db, ActionRequest.select(ActionRequest.status).where(
                        ActionRequest.id == "x").sql()[0])
                workers = start_workers(env, 1, "threads", 8)
                time.sleep(3)
                direct, rounds, posts = [], [], []
                groups = {"worker": [w.pid for w in workers], "simulator": [net_proc.pid]}
                # The direct call's own CPU, to take out of the paired run's.
                warm = cpu_seconds(groups)
                looped = [baseline(i) for i in range(WARM_UP)]
                before = cpu_seconds(groups)
                direct_cpu = {name: (before[name] - warm[name]) / WARM_UP for name in before}
                for i in range(args.actions):
                    # Paired: a machine that slows down mid-run slows both alike.
                    direct.append(baseline(i))
                    start = time.perf_counter()
                    resp = http.post(path, headers=headers,
                                     json={"mode": "manual", "temp": str(18 + i % 5)})
                    assert resp.status_code == 201, resp.json
                    posts.append(time.perf_counter() - start)
                    status = ended(resp.json["id"])
                    assert status == "COMPLETED", status
                    rounds.append(time.perf_counter() - start)
                after = cpu_seconds(groups)
                # Where the time went: the request's own timestamps (insert, final move).
                stored = [(r.updated_at - r.created_at).total_seconds()
                          for r in ActionRequest.select(ActionRequest.created_at,
                                                        ActionRequest.updated_at)]
        finally:
            stop(workers)
    d50, d99 = percentiles(direct)
    l50, l99 = percentiles(looped)
    r50, r99 = percentiles(rounds)
    a50, a99 = percentiles(posts)
    s50, s99 = percentiles(stored)
    print(f"{'':>28} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'direct simulator call':>28} {d50:>8.2f} {d99:>8.2f}")
    print(f"{'(alone, in a loop)':>28} {l50:>8.2f} {l99:>8.2f}")
    print(f"{'platform round trip':>28} {r50:>8.2f} {r99:>8.2f}")
    print(f"{'of which the API request':>28} {a50:>8.2f} {a99:>8.2f}")
    print(f"{'recorded -> COMPLETED':>28} {s50:>8.2f} {s99:>8.2f}")
    print(f"{'ratio (platform/direct)':>28} {r50 / d50:>8.1f} {r99 / d99:>8.1f}")
    print(f"{'(to the call in a loop)':>28} {r50 / l50:>8.1f} {r99 / l99:>8.1f}")
    # The bench process is the API (in process) and the wait for COMPLETED; each action's
    # share is the paired run's less its direct call's (from the warm-up).
    print("CPU ms per action: " + ", ".join(
        f"{name} {((after[name] - before[name]) / args.actions - direct_cpu[name]) * 1000:.2f}"
        for name in after))
    print(f"actions={args.actions} all COMPLETED (waited: {args.wait})")


if __name__ == "__main__":
    main()
