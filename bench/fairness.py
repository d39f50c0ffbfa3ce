"""Fair dispatch: how long a small app's clients wait for their poll while another app's
backlog is being polled, against the same clients' wait with no backlog, in the same run.

    .venv/bin/python bench/fairness.py --backlog 6000

Real Celery workers (2 processes, 8 threads) on PostgreSQL + Redis poll the OpenWeatherMap
simulator; this process runs the dispatcher every DISPATCH_INTERVAL (5 s, DISPATCH_BATCH 500),
as beat does. "alone": the small app's clients come due with nothing else due. "behind a
backlog": every client of the large app comes due at once (its first poll each), and the small
app's a second later. A client's wait is from its due time to the end of its poll.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (  # noqa: E402
    check_alive,
    platform,
    platform_env,
    scratch_database,
    simulators,
    start_workers,
    stop,
)


def make_app(name: str, count: int) -> list[str]:
    """An app with an OpenWeatherMap instance and ``count`` clients not due yet; their ids."""
    from thingbridge.db import utcnow
    from thingbridge.models import App, ConnectorClient, ConnectorInstance

    app, _ = App.register(name)
    instance = ConnectorInstance.create(app=app, type_id="openweathermap",
                                        configuration={"app_key": "a" * 32})
    later = utcnow() + datetime.timedelta(days=1)
    rows = [ConnectorClient(app=app, type_id="openweathermap", instance=instance,
                            external_subject_id=f"{name}{i}", status="STARTING",
                            configuration={"lat": round(-60 + i * 0.0137 % 120, 4),
                                           "lon": round(-170 + i * 0.0291 % 340, 4)},
                            next_poll_at=later) for i in range(count)]
    ConnectorClient.bulk_create(rows, batch_size=500)
    return [c.id for c in ConnectorClient.select(ConnectorClient.id)
            .where(ConnectorClient.app == app)]


def make_due(ids: list[str], at: datetime.datetime) -> None:
    from thingbridge.models import ConnectorClient

    ConnectorClient.update(next_poll_at=at).where(ConnectorClient.id.in_(ids)).execute()


def polled_by(ids: list[str], since: datetime.datetime) -> list[datetime.datetime]:
    from thingbridge.models import ConnectorClient

    return [c.last_polled_at for c in ConnectorClient.select(ConnectorClient.last_polled_at)
            .where(ConnectorClient.id.in_(ids) & (ConnectorClient.last_polled_at >= since))]


def run_until_polled(groups: dict[str, tuple[list[str], datetime.datetime]],
                     interval: float) -> dict[str, list[float]]:
    """Dispatch every ``interval`` seconds until every group's clients have polled since
    their due time; each group's waits in seconds."""
    from thingbridge_workers.dispatcher import dispatch

    start = time.perf_counter()
    while True:
        dispatch()
        done = {name: polled_by(ids, due) for name, (ids, due) in groups.items()}
        if all(len(done[name]) == len(ids) for name, (ids, _) in groups.items()):
            return {name: sorted((at - groups[name][1]).total_seconds() for at in done[name])
                    for name in groups}
        if time.perf_counter() - start > 1200:
            raise SystemExit("not every client polled after 20 minutes")
        time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=6000)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    workers = []
    with simulators("openweathermap") as (_started, providers), scratch_database() as url:
        env = platform_env(url, THINGBRIDGE_DISPATCH_BATCH=str(args.batch), **providers)
        try:
            with platform(env):
                from thingbridge.db import utcnow

                small, large = make_app("small", args.small), make_app("large", args.backlog)
                workers = start_workers(env, 2, "threads", 8)
                time.sleep(3)
                now = utcnow()
                make_due(small, now)
                alone = run_until_polled({"small": (small, now)}, args.interval)["small"]
                now = utcnow()
                make_due(large, now)
                make_due(small, now + datetime.timedelta(seconds=1))
                time.sleep(1)
                start = time.perf_counter()
                behind = run_until_polled({"small": (small, now + datetime.timedelta(seconds=1)),
                                           "large": (large, now)}, args.interval)
                drained = time.perf_counter() - start
                check_alive(workers)
        finally:
            stop(workers)
    print(f"backlog {args.backlog} clients, small app {args.small}, "
          f"DISPATCH_BATCH {args.batch} every {args.interval:g} s")
    print(f"small app's wait alone:            median {statistics.median(alone):5.1f} s, "
          f"max {max(alone):5.1f} s")
    small_behind = behind["small"]
    print(f"small app's wait behind a backlog: median {statistics.median(small_behind):5.1f} s, "
          f"max {max(small_behind):5.1f} s  (ratio of medians "
          f"{statistics.median(small_behind) / statistics.median(alone):.1f})")
    print(f"backlog polled in {drained:.0f} s ({args.backlog / drained:.0f} polls/s)")


if __name__ == "__main__":
    main()
