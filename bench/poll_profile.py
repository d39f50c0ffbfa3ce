"""Where one poll's time goes: polls run in this process, one after another, outside Celery.

    .venv/bin/python bench/poll_profile.py --clients 300 [--profile]

Seeds N clients as ``bench/polling.py`` does (half OpenWeatherMap, half Netatmo), polls each
once (things created), then runs steady rounds (readings pinned to the same bucket) and changed
rounds (the pin moved on), calling ``thingbridge_workers.polling.poll`` for every client. Per
round and connector it prints the CPU and wall milliseconds per poll, the CPU of each phase of
the poll (take, fetch, map, fit, read, plan, record, apply, emit; nested phases are included in
their parents), the statements each poll sent by kind, and the CPU the PostgreSQL backend
serving this process spent on them. ``--profile`` adds cProfile's top functions per round
(``POLL_PROFILE_DUMP=/tmp/x`` also writes each round's stats file). What it leaves out, the
workers' Celery and thread overhead, is the difference to ``bench/polling.py``'s CPU per poll.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (  # noqa: E402
    platform_env,
    process_stat,
    scratch_database,
    start_simulator,
    stop,
)
from polling import pin_readings, setup  # noqa: E402


class StatementMeter:
    """Counts the statements sent through the database handle, by kind, with the wall time in
    them and the CPU the PostgreSQL backend serving this process spent on them (read from
    /proc before and after each one: ticks of 10 ms, so only sums over many statements mean
    anything)."""

    def __init__(self, database):
        self.database, self.backend = database, None
        self.kinds: collections.Counter = collections.Counter()
        self.backend_seconds: collections.Counter = collections.Counter()
        self.reset()
        original = database.execute_sql

        def execute_sql(sql, params=None, *args, **kwargs):
            return self._measure(" ".join(sql.split()[:3])[:40],
                                 lambda: original(sql, params, *args, **kwargs))

        database.execute_sql = execute_sql
        for name in ("begin", "commit"):
            self._wrap(name)

    def _wrap(self, name):
        original = getattr(self.database, name)
        setattr(self.database, name,
                lambda *args, **kwargs: self._measure(name.upper(),
                                                      lambda: original(*args, **kwargs)))

    def _measure(self, kind, run):
        pg = backend_cpu(self.backend) if self.backend else 0.0
        start = time.perf_counter()
        try:
            return run()
        finally:
            self.seconds += time.perf_counter() - start
            self.count += 1
            self.kinds[kind] += 1
            if self.backend:
                self.backend_seconds[kind] += backend_cpu(self.backend) - pg

    def reset(self):
        self.count, self.seconds = 0, 0.0
        self.kinds.clear()
        self.backend_seconds.clear()


def backend_cpu(pid: int) -> float:
    """CPU seconds the PostgreSQL backend ``pid`` used so far (it runs on this machine)."""
    return process_stat(pid)[2]


PHASES: collections.Counter = collections.Counter()


def _timed(owner, name, label=None):
    """Charge the CPU time of ``owner.name`` to a phase (nested phases are not subtracted)."""
    original = getattr(owner, name)

    def timed(*args, **kwargs):
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            PHASES[label or name] += time.thread_time() - start

    setattr(owner, name, timed)


def instrument():
    from thingbridge.connectors.registry import connector_classes
    from thingbridge_workers import polling

    for name in ("call_plugin", "build_connector"):
        _timed(polling, name)
    for name in ("take", "mark_polled", "record_success"):
        _timed(polling.lifecycle, name)
    for name in ("read_stored", "plan", "apply"):
        _timed(polling.sync, name)
    _timed(polling.events, "emit_many")
    _timed(polling.spec_fit, "fit")
    _timed(polling.rate_budget, "take", "rate_budget")
    for cls in connector_classes().values():
        _timed(cls, "map_things")
        _timed(cls, "fetch")


def run_round(label, ids_by_type, meter, profile: bool, backend: int):
    from thingbridge.db import utcnow
    from thingbridge.models import ConnectorClient
    from thingbridge_workers.polling import poll

    ConnectorClient.update(next_poll_at=utcnow()).execute()
    for type_id, ids in ids_by_type.items():
        profiler = cProfile.Profile() if profile else None
        meter.reset()
        PHASES.clear()
        outcomes = collections.Counter()
        cpu, wall, pg = time.process_time(), time.perf_counter(), backend_cpu(backend)
        if profiler:
            profiler.enable()
        for client_id in ids:
            outcomes[poll(client_id)] += 1
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        pg = backend_cpu(backend) - pg
        n = len(ids)
        print(f"{label:>8} {type_id:>15}: CPU {cpu * 1000 / n:5.2f} ms/poll, wall "
              f"{wall * 1000 / n:5.2f} ms, PostgreSQL CPU {pg * 1000 / n:4.2f} ms, "
              f"{meter.count / n:4.1f} statements "
              f"({meter.seconds * 1000 / n:4.2f} ms in them) {dict(outcomes)}")
        print("          statements/poll (backend CPU ms/poll): " + ", ".join(
            f"{k}: {v / n:.1f} ({meter.backend_seconds[k] * 1000 / n:.2f})"
            for k, v in meter.kinds.items()))
        print("          CPU ms/poll: " + ", ".join(f"{k} {v * 1000 / n:.2f}"
                                                    for k, v in PHASES.items()))
        if profiler and os.environ.get("POLL_PROFILE_DUMP"):
            profiler.dump_stats(f"{os.environ['POLL_PROFILE_DUMP']}-{label}-{type_id}.prof")
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    owm_proc, owm = start_simulator("thingbridge_openweathermap.simulator")
    net_proc, netatmo = start_simulator("thingbridge_netatmo.simulator")
    try:
        with scratch_database() as url:
            os.environ.update(platform_env(url, THINGBRIDGE_OPENWEATHERMAP_BASE_URL=owm,
                                           THINGBRIDGE_NETATMO_BASE_URL=netatmo,
                                           THINGBRIDGE_OPENWEATHERMAP_RATE_LIMIT="0",
                                           THINGBRIDGE_NETATMO_RATE_LIMIT="0"))
            from thingbridge import create_app, db
            from thingbridge.connectors.registry import sync_descriptions
            from thingbridge.models import ConnectorClient

            app = create_app(serve_http=False)
            with app.app_context(), db.db.connection_context():
                db.migrate_up()
                sync_descriptions(app)
                setup(args.clients, owm, netatmo)
                ids_by_type = collections.defaultdict(list)
                for row in ConnectorClient.select(ConnectorClient.id, ConnectorClient.type_id):
                    ids_by_type[row.type_id].append(row.id)
                meter = StatementMeter(db.db.obj)
                instrument()
                backend = db.db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
                meter.backend = backend
                bucket = int(time.time() // 600)
                for label, pin in (("first", bucket), ("steady", bucket),
                                   ("changed", bucket + 1), ("steady", bucket + 1),
                                   ("changed", bucket + 2)):
                    pin_readings(pin, owm, netatmo)
                    run_round(label, ids_by_type, meter, args.profile and label != "first",
                              backend)
    finally:
        stop([owm_proc, net_proc])


if __name__ == "__main__":
    main()
