"""``thingbridge run`` as a new user starts it: a fresh var directory, free ports (API and
simulators), an OpenWeatherMap client created through the API and polled to STARTED by the
embedded worker and beat (SQLite, filesystem broker), API threads writing while the worker
polls (event numbering without gaps), then Ctrl-C stops every child."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from flows import sim_stats
from helpers import LAMP, OWM_KEY, wait_until

pytestmark = pytest.mark.slow
THINGBRIDGE = str(Path(sys.executable).parent / "thingbridge")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children_of(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def embedded(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("THINGBRIDGE_")}
    env.update({"THINGBRIDGE_VAR_DIR": str(tmp_path / "var"),
                "THINGBRIDGE_OPENWEATHERMAP_SIMULATOR_PORT": "0",
                "THINGBRIDGE_NETATMO_SIMULATOR_PORT": "0",
                # The worker polls again every second, so it writes while the API does.
                "THINGBRIDGE_OPENWEATHERMAP_POLL_INTERVAL": "1",
                "THINGBRIDGE_DISPATCH_INTERVAL": "0.5"})
    # Started elsewhere than the var dir, as a user does: nothing may land where it runs.
    (tmp_path / "cwd").mkdir()
    proc = subprocess.Popen([THINGBRIDGE, "run", "--port", str(port)], env=env,
                            cwd=tmp_path / "cwd", stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    # Reads until the output ends (the process and its children exit): never spins.
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    proc.lines, proc.base, proc.children = lines, f"http://127.0.0.1:{port}", set()
    yield proc
    # Whatever the test saw or failed on, nothing it started outlives it.
    for pid in proc.children | (_descendants(proc.pid) if proc.poll() is None else set()):
        if _running(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_run_serves_polls_and_ctrl_c_stops_every_child(embedded, tmp_path):
    text = lambda: "".join(embedded.lines)  # noqa: E731
    wait_until(lambda: "Press Ctrl-C" in text() or embedded.poll() is not None, timeout=60,
               message="the startup banner")
    assert embedded.poll() is None, text()
    creds = re.search(r"client_id=(\S+) client_secret=(\S+)", text())
    simulator = re.search(r"openweathermap\s+simulator (http://\S+)", text()).group(1)
    assert not simulator.endswith(":8091")  # the port setting moved it
    assert (tmp_path / "var" / "thingbridge.db").exists()

    def healthy():
        try:
            return requests.get(f"{embedded.base}/health", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(healthy, timeout=60, message="the API answering")
    token = requests.post(f"{embedded.base}/oauth2/token", data={
        "grant_type": "client_credentials"}, auth=creds.groups(), timeout=10).json()
    headers = {"Authorization": f"Bearer {token['access_token']}",
               "X-External-Subject-Id": "alice"}
    api = f"{embedded.base}/api/v1/connectors"
    assert requests.post(f"{api}/instances", headers=headers, timeout=10, json={
        "connector_type_id": "openweathermap",
        "configuration": {"app_key": OWM_KEY}}).status_code == 201
    created = requests.post(f"{api}/clients", headers=headers, timeout=10, json={
        "connector_type_id": "openweathermap", "configuration": {"city": "Berlin"}})
    assert created.status_code == 201, created.text
    client = f"{api}/clients/{created.json()['client_id']}"
    wait_until(lambda: requests.get(client, headers=headers, timeout=10).json()["status"]
               == "STARTED", timeout=60, message="the client STARTED")
    calls = sim_stats(simulator)["calls"]
    assert calls >= 2

    # SQLite under concurrent writers: API threads creating things (each numbers an event in
    # an IMMEDIATE transaction) while the worker keeps polling through the filesystem broker.
    def create_things(n):
        return [requests.post(f"{embedded.base}/api/v1/things", headers=headers, json=LAMP,
                              timeout=30).status_code for _ in range(n)]

    with ThreadPoolExecutor(4) as pool:
        statuses = [s for batch in pool.map(create_things, [8] * 4) for s in batch]
    assert statuses == [201] * 32
    wait_until(lambda: sim_stats(simulator)["calls"] > calls,
               message="the worker polling meanwhile")
    ids, cursor = [], 0
    while page := requests.get(f"{embedded.base}/api/v1/events?after={cursor}&limit=100",
                               headers=headers, timeout=10).json()["events"]:
        ids += [e["id"] for e in page]
        cursor = ids[-1]
    assert ids == list(range(1, len(ids) + 1))  # no gap, no duplicate
    created = requests.get(f"{embedded.base}/api/v1/things", headers=headers, timeout=10)
    assert len(created.json()) == 33  # the weather thing and the 32 lamps
    too_long = requests.get(f"{embedded.base}/api/v1/things/{'a' * 5000}", timeout=10)
    assert too_long.status_code == 414 and too_long.json()["error"] == "URI_TOO_LONG"

    children = embedded.children = _descendants(embedded.pid)
    assert len(children) >= 3  # api, worker, beat (and their own processes)
    os.killpg(embedded.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
    assert embedded.wait(timeout=60) == 0, text()
    # The supervisor returned after its children; theirs (Celery's pool, gunicorn's worker)
    # ended before them.
    assert [pid for pid in children if _running(pid)] == []
    assert list((tmp_path / "cwd").iterdir()) == []  # everything it keeps is in the var dir
    assert (tmp_path / "var" / "broker" / "control").is_dir()
