"""Worker memory: resident size of one started `thingbridge` Celery worker after it polled N
clients (half OpenWeatherMap, half Netatmo, on PostgreSQL + Redis) a few rounds, against a bare
Celery worker (one no-op task, bench/bare_celery.py) that ran as many tasks with the same pool
and concurrency, both measured in this run. Also prints what each import adds to a fresh
interpreter, in the order the worker loads them.

    .venv/bin/python bench/worker_memory.py --clients 200 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
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
    tree_rss_mb,
)
from polling import measure_round, pin_readings, setup  # noqa: E402

# What a worker imports, outermost first: each line is what importing it adds on top of the
# lines above it (a module already loaded adds nothing).
IMPORTS = ["celery", "kombu.transport.redis", "flask", "peewee", "psycopg", "requests",
           "cryptography.fernet", "marshmallow", "authlib.integrations.requests_client",
           "prometheus_client", "thingbridge_openweathermap.connector",
           "thingbridge_netatmo.connector", "thingbridge.models", "thingbridge_workers.polling",
           "thingbridge_workers.celery_app", "flask_smorest", "apispec", "thingbridge.api"]
_PROBE = """
import importlib, sys
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
last = rss()
print(f"interpreter {last:.1f}")
for name in sys.argv[1:]:
    loaded = name in sys.modules
    importlib.import_module(name)
    now = rss()
    print(f"{name} {now - last:.1f}{' (loaded by an import above)' if loaded else ''}")
    last = now
"""


def import_costs(env: dict) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE, *IMPORTS], env=env, check=True,
                         capture_output=True, text=True).stdout
    return out.splitlines()


def bare_worker_rss(env: dict, args) -> float:
    bare_env = {**env, "PYTHONPATH": os.path.dirname(__file__)}
    cmd = [sys.executable, "-m", "celery", "-A", "bare_celery:celery", "worker",
           "--loglevel=WARNING", f"--pool={args.pool}", f"--concurrency={args.concurrency}",
           "-n", "bare@%h", "--without-heartbeat", "--without-gossip", "--without-mingle"]
    proc = subprocess.Popen(cmd, env=bare_env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sys.path.insert(0, os.path.dirname(__file__))
        import bare_celery

        bare_celery.celery.control.purge()
        time.sleep(3)
        for i in range(args.clients * args.rounds):
            bare_celery.noop.delay(i)
        with bare_celery.celery.connection_for_write() as conn:
            client = conn.default_channel.client
            while client.llen("celery"):
                time.sleep(0.2)
        time.sleep(1)
        check_alive([proc], "bare worker")
        return tree_rss_mb([proc.pid])
    finally:
        stop([proc])


def platform_worker_rss(env: dict, args, owm: str, netatmo: str) -> tuple[float, float]:
    """RSS when started (idle), and after the polling rounds."""
    workers = []
    try:
        with platform(env):
            setup(args.clients, owm, netatmo)
            workers = start_workers(env, 1, args.pool, args.concurrency)
            time.sleep(4)
            started = tree_rss_mb([w.pid for w in workers])
            bucket = int(time.time() // 600)
            for i in range(args.rounds):
                pin_readings(bucket + i, owm, netatmo)  # every round writes changed values
                measure_round(args.clients, f"round {i + 1}")
                check_alive(workers)
            return started, tree_rss_mb([w.pid for w in workers])
    finally:
        stop(workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with simulators("openweathermap", "netatmo") as (sims, providers), \
            scratch_database() as url:
        env = platform_env(url, **providers)
        os.environ.update(env)
        costs = import_costs(env)
        bare = bare_worker_rss(env, args)
        started, polled = platform_worker_rss(env, args, sims["openweathermap"][1],
                                              sims["netatmo"][1])
    print("MiB added by each import (fresh interpreter, in this order):")
    for line in costs:
        print("   ", line)
    print(f"pool={args.pool} concurrency={args.concurrency} clients={args.clients} "
          f"rounds={args.rounds}")
    print(f"{'bare Celery worker after ' + str(args.clients * args.rounds) + ' tasks':>44} "
          f"{bare:7.1f} MiB")
    print(f"{'thingbridge worker, started':>44} {started:7.1f} MiB")
    print(f"{'thingbridge worker after ' + str(args.clients * args.rounds) + ' polls':>44} "
          f"{polled:7.1f} MiB  ({polled / bare:.2f}x bare)")


if __name__ == "__main__":
    main()
