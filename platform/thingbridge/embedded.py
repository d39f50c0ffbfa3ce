"""``thingbridge run``: the whole platform on one machine with no servers to install.

SQLite file + Celery filesystem broker + the API, a worker and beat as child processes (a child
that dies is started again) + every installed connector's provider simulator, all on 127.0.0.1.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys

from thingbridge import create_app
from thingbridge.api import outside_calls
from thingbridge.config import provider_setting, var_dir
from thingbridge.connectors.registry import connector_classes, sync_descriptions
from thingbridge.db import db, migrate_up
from thingbridge.gunicorn_workers import serve_command
from thingbridge.localserver import LocalServer
from thingbridge.models import App
from thingbridge.supervise import Child, supervise

CELERY_APP = "thingbridge_workers.celery_app:celery"
SIMULATOR_PORTS = {"openweathermap": 8091, "netatmo": 8092}


def _start_simulators(app) -> dict[str, LocalServer]:
    servers = {}
    for type_id, cls in connector_classes(app).items():
        if not cls.simulator:
            continue
        module, factory = cls.simulator.split(":")
        wsgi = getattr(importlib.import_module(module), factory)()
        # THINGBRIDGE_<TYPE>_SIMULATOR_PORT moves it (0: any free port), e.g. beside another run.
        port = int(provider_setting(app.config, type_id, "SIMULATOR_PORT",
                                    SIMULATOR_PORTS.get(type_id, 0)))
        servers[type_id] = LocalServer(wsgi, port=port).start()
        os.environ[f"THINGBRIDGE_{type_id.upper()}_BASE_URL"] = servers[type_id].url
    return servers


def _demo_credentials() -> dict:
    """The demo app's credentials, created once and kept (owner-only) under var/."""
    path = var_dir() / "demo-app.json"
    if path.exists():
        return json.loads(path.read_text())
    app, secret = App.register("demo")
    creds = {"client_id": app.client_id, "client_secret": secret}
    path.touch(mode=0o600)
    path.write_text(json.dumps(creds))
    return creds


API_THREADS = 8  # one process: SQLite takes one writer at a time anyway


def _children(port: int) -> list[Child]:
    py = sys.executable
    beat_file = str(var_dir() / "celerybeat-schedule")
    return [
        Child("api", serve_command(1, API_THREADS, f"127.0.0.1:{port}", "--log-level",
                                   "warning")),
        Child("worker", [py, "-m", "celery", "-A", CELERY_APP, "worker", "--loglevel=WARNING",
                         "--concurrency=2"]),
        Child("beat", [py, "-m", "celery", "-A", CELERY_APP, "beat", "--loglevel=WARNING",
                       "-s", beat_file]),
    ]


def run_embedded(port: int) -> int:
    servers = _start_simulators(create_app())
    app = create_app()  # again, now that the simulator URLs are in the environment
    with db.connection_context():
        migrate_up()
        sync_descriptions(app)
        creds = _demo_credentials()
    base = f"http://127.0.0.1:{port}"
    print(f"""
Thingbridge is running (embedded: SQLite + filesystem broker under {var_dir()}).
  API              {base}   docs {base}/docs   health {base}/health
  Console          {base}/console   metrics {base}/metrics""")
    for type_id, server in servers.items():
        print(f"  {type_id:<16} simulator {server.url}")
    print(f"""
Demo app: client_id={creds['client_id']} client_secret={creds['client_secret']}
  (sign in to the console with these two)
Next: get a token and connect a weather location (README, "Tutorial"):
  curl -s -u {creds['client_id']}:{creds['client_secret']} -d grant_type=client_credentials \\
       {base}/oauth2/token
Press Ctrl-C to stop.""", flush=True)
    slots = outside_calls.share_between_processes(f"run-{port}", API_THREADS - 1)
    try:
        return supervise(_children(port))
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(slots, ignore_errors=True)
