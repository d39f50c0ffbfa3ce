"""API read benchmark: `thingbridge api` (gunicorn, PostgreSQL) against a bare Flask JSON
hello-world under the same gunicorn settings, both loaded with wrk in the same run.

    apt-get install wrk                      # Debian's package; the load generator
    .venv/bin/python bench/api.py --duration 10 --connections 16

Seeds one app, one subject with 20 things (app-created, three properties each) and one
OpenWeatherMap client, then measures each read with wrk right after a bare Flask run of the
same length and prints req/s, the ratio to that paired bare Flask rate (and to the best bare
Flask rate of the run), p50/p99 latency, and the CPU milliseconds each request cost the
server's processes and PostgreSQL. Pairing: the machine's speed drifts during a run (bare
Flask itself moved by a third between the start and the end of one), and a read measured
minutes after its baseline took the drift into its ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

import requests

sys.path.insert(0, os.path.dirname(__file__))
from common import (  # noqa: E402
    cpu_between,
    free_port,
    platform_env,
    scratch_database,
    snapshot,
    start_simulator,
    stop,
)

SUBJECT = "alice"
OWM_KEY = "0123456789abcdef0123456789abcdef"
HELLO = "bench_hello:app"  # bench/bench_hello.py
THINGBRIDGE = os.path.join(os.path.dirname(sys.executable), "thingbridge")


def thing_body(i: int) -> dict:
    return {"name": f"Lamp {i}", "manufacturer": "ACME", "displaytype": "core.LIGHT",
            "maincomponentid": "switch", "components": [{
                "id": "switch", "name": "Switch", "componenttype": "core.SWITCH",
                "properties": [
                    {"id": "on", "value": "false", "type": "BOOLEAN"},
                    {"id": "level", "value": str(i), "unit": "%", "type": "NUMBER"},
                    {"id": "label", "value": f"lamp {i}", "type": "STRING"}],
                "actions": [{"id": "setOn", "parameters": [
                    {"name": "on", "type": "BOOLEAN", "required": True}]}]}]}


def gunicorn(args: list[str], env: dict, port: int, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except requests.RequestException:
            time.sleep(0.2)
    stop([proc])
    raise SystemExit(f"{' '.join(args)} did not start")


def wrk(url: str, headers: dict, duration: int, connections: int,
        server: subprocess.Popen) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    before = snapshot()
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    after = snapshot()
    count = max(int(re.search(r"(\d+) requests in", out).group(1)), 1)
    cpu_ms = {"server": cpu_between(before, after, roots=[server.pid]) * 1000 / count,
              "postgres": cpu_between(before, after, comm="postgres") * 1000 / count}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} non-2xx answers under load")
    return {"rate": rate, "p50": latency.get("50", "?"), "p99": latency.get("99", "?"), **cpu_ms}


def seed(base: str, env: dict) -> tuple[dict, dict]:
    """The demo-sized app: returns (headers, paths) for the reads."""
    out = subprocess.run([THINGBRIDGE, "create-app", "bench"],
                         env=env, capture_output=True, text=True, check=True).stdout
    creds = dict(line.split("=", 1) for line in out.split() if "=" in line)
    token = requests.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=(creds["client_id"], creds["client_secret"]),
                          timeout=10).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "X-External-Subject-Id": SUBJECT}
    ids = [requests.post(f"{base}/api/v1/things", json=thing_body(i), headers=headers,
                         timeout=10).json()["Id"] for i in range(20)]
    requests.post(f"{base}/api/v1/connectors/instances", headers=headers, timeout=10, json={
        "connector_type_id": "openweathermap", "configuration": {"app_key": OWM_KEY}}
    ).raise_for_status()
    client = requests.post(f"{base}/api/v1/connectors/clients", headers=headers, timeout=10,
                           json={"connector_type_id": "openweathermap",
                                 "configuration": {"city": "Berlin"}})
    client.raise_for_status()
    paths = {
        "GET /api/v1/connectors/descriptions": "/api/v1/connectors/descriptions",
        "GET /api/v1/things/{id}": f"/api/v1/things/{ids[7]}",
        "GET /api/v1/things?expand=components (20)": "/api/v1/things?expand=components",
        "GET /api/v1/events": "/api/v1/events?after=0&limit=100",
        "GET /api/v1/connectors/clients/{id}":
            f"/api/v1/connectors/clients/{client.json()['client_id']}",
    }
    return headers, paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3,
                        help="gunicorn workers (both apps; 3 as `thingbridge api`)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per gunicorn worker (both apps; more than 1 is gthread)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    owm_proc, owm = start_simulator("thingbridge_openweathermap.simulator")
    procs = [owm_proc]
    try:
        with scratch_database() as url:
            api_port, hello_port = free_port(), free_port()
            env = platform_env(url, THINGBRIDGE_OPENWEATHERMAP_BASE_URL=owm,
                               THINGBRIDGE_PUBLIC_BASE_URL=f"http://127.0.0.1:{api_port}")
            subprocess.run([THINGBRIDGE, "migrate"], env=env,
                           check=True, capture_output=True)
            # Exactly as the README's production section starts it.
            api = gunicorn([THINGBRIDGE, "api", "--port", str(api_port),
                                   "--workers", str(args.workers),
                                   "--threads", str(args.threads)],
                           env, api_port, args.workers)
            procs.append(api)
            hello_env = {**env, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}
            hello_server = gunicorn([sys.executable, "-m", "gunicorn", "-w", str(args.workers),
                                     "--threads", str(args.threads),
                                     "-b", f"127.0.0.1:{hello_port}", HELLO],
                                    hello_env, hello_port, args.workers)
            procs.append(hello_server)
            base = f"http://127.0.0.1:{api_port}"
            headers, paths = seed(base, env)
            hello = f"http://127.0.0.1:{hello_port}/"
            load = (args.duration, args.connections)
            results = {}
            for name, path in paths.items():
                paired = wrk(hello, {}, *load, hello_server)
                results[name] = (wrk(base + path, headers, *load, api), paired)
    finally:
        stop(procs)
    best = max(paired["rate"] for _, paired in results.values())
    print(f"\nbare Flask hello-world, run before each read: best {best:.0f} req/s; gunicorn "
          f"-w {args.workers} --threads {args.threads}, "
          f"wrk -t2 -c{args.connections} -d{args.duration}s")
    print(f"{'read':<44} {'req/s':>7} {'paired':>7} {'ratio':>6} {'to best':>7} {'p50':>9} "
          f"{'p99':>9} {'CPU ms/req: server':>19} {'postgres':>8} {'Flask':>6}")
    for name, (result, paired) in results.items():
        print(f"{name:<44} {result['rate']:>7.0f} {paired['rate']:>7.0f} "
              f"{result['rate'] / paired['rate']:>6.2f} {result['rate'] / best:>7.2f} "
              f"{result['p50']:>9} {result['p99']:>9} "
              f"{result['server']:>19.2f} {result['postgres']:>8.2f} {paired['server']:>6.2f}")


if __name__ == "__main__":
    main()
