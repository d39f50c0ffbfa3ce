"""Where Prometheus scrapes.

- ``GET /metrics`` on the API: the counters of every gunicorn process of this server
  (prometheus_client's multiprocess mode, through a folder the processes share) plus gauges
  read from the database at scrape time: clients by connector and status, staleness, outbox
  lag. The gauges describe the whole platform, so every API server reports the same values.
- ``thingbridge worker --metrics-port``: a port of each worker's own, serving the counters of
  its pool processes; ``THINGBRIDGE_METRICS_TOKEN`` guards it as it guards the API's.
"""

from __future__ import annotations

import hmac
import json
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from flask import Response, abort, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer

from thingbridge.db import utcnow

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
METRICS_DIR = "THINGBRIDGE_METRICS_DIR"
WORKER_PORT, WORKER_HOST = "THINGBRIDGE_METRICS_PORT", "THINGBRIDGE_METRICS_HOST"


METRICS_OPERATION = {"get": {
    "tags": ["operations"], "summary": "Prometheus metrics (text exposition format)",
    "description": "This server's counters and the platform's gauges read from the database. "
                   "With THINGBRIDGE_METRICS_TOKEN set, `Authorization: Bearer <token>` is "
                   "required.",
    "responses": {"200": {"description": "Prometheus text format",
                          "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
                  "401": {"description": "THINGBRIDGE_METRICS_TOKEN is set and not given",
                          "content": {"application/json": {
                              "schema": {"$ref": "#/components/schemas/ErrorBody"}}}},
                  "default": {"$ref": "#/components/responses/DEFAULT_ERROR"}},
}}


def share_between_processes(server: str) -> None:
    """Before a server forks its processes: an empty folder where they keep their counters
    (prometheus_client reads the variable when it is imported, so set it first)."""
    base = Path(os.environ.get(METRICS_DIR) or Path(tempfile.gettempdir()) / "thingbridge-metrics")
    folder = base / server
    shutil.rmtree(folder, ignore_errors=True)  # counters of a previous run are not ours
    folder.mkdir(parents=True)
    os.environ[MULTIPROCESS] = str(folder)


def process_registry() -> CollectorRegistry:
    """This process's instruments or, in multiprocess mode, those of all the server's."""
    if not os.environ.get(MULTIPROCESS):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # a scrape every 15 s is not worth a log line
        pass


def start_worker_server(token: str | None):
    """In a worker's main process: serve its pool's counters if a metrics port is set, behind
    ``THINGBRIDGE_METRICS_TOKEN`` as the API's ``/metrics`` is; returns the server."""
    if not (port := os.environ.get(WORKER_PORT)):
        return None
    host = os.environ.get(WORKER_HOST, "127.0.0.1")
    family = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][0]
    server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
    server = make_server(host, int(port), _bearer_only(make_wsgi_app(process_registry()), token),
                         server_class, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def _token_matches(token: str | None, authorization: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters, which a header can hold.
    given = authorization.encode("utf-8", "replace")
    return not token or hmac.compare_digest(given, f"Bearer {token}".encode())


def operator_token_in(authorization: str) -> bool:
    """Whether ``authorization`` carries the operator's THINGBRIDGE_METRICS_TOKEN (set)."""
    token = current_app.config.get("METRICS_TOKEN")
    return bool(token) and _token_matches(token, authorization)


def _bearer_only(app, token: str | None):
    def guarded(environ, start_response):
        if _token_matches(token, environ.get("HTTP_AUTHORIZATION", "")):
            return app(environ, start_response)
        start_response("401 UNAUTHORIZED", [("Content-Type", "application/json"),
                                            ("WWW-Authenticate", "Bearer")])
        return [json.dumps({"status": 401, "error": "UNAUTHORIZED",
                            "description": "THINGBRIDGE_METRICS_TOKEN is required"}).encode()]
    return guarded


class DatabaseGauges:
    """The platform's state, read when scraped: one grouped query over the clients and one
    over each consumer's cursors, whatever the number of clients or events."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        from thingbridge.connectors.registry import connector_classes, poll_interval
        from thingbridge.connectors.service import client_counts, poll_backlog
        from thingbridge.models import CLIENT_STATUSES
        from thingbridge.outbox import publishers, publishing, webhooks

        types = list(connector_classes(self.app))
        counts = {(t, s): 0 for t in types for s in CLIENT_STATUSES}
        oldest = {}
        for type_id, status, clients, oldest_success in client_counts():
            counts[(type_id, status)] = clients
            if status == "STARTED" and oldest_success is not None:
                oldest[type_id] = oldest_success
        now = utcnow()
        yield _gauge("thingbridge_clients", "Connector clients by connector and status",
                     ["connector", "status"], {key: n for key, n in counts.items()})
        yield _gauge("thingbridge_client_staleness_seconds",
                     "Age of the oldest last successful poll among STARTED clients",
                     ["connector"], {(t,): (now - oldest[t]).total_seconds() if t in oldest
                                     else 0.0 for t in types})
        yield _gauge("thingbridge_poll_interval_seconds", "Configured seconds between polls",
                     ["connector"], {(t,): poll_interval(t, self.app) for t in types})
        backlog = {type_id: (clients, earliest) for type_id, clients, earliest in poll_backlog()}
        yield _gauge("thingbridge_polls_waiting_clients",
                     "Clients due for a poll that the dispatcher has not sent yet",
                     ["connector"], {(t,): backlog.get(t, (0, None))[0] for t in types})
        yield _gauge("thingbridge_poll_wait_seconds",
                     "How long the longest-waiting of those clients has been due",
                     ["connector"], {(t,): (now - backlog[t][1]).total_seconds()
                                     if t in backlog else 0.0 for t in types})
        lag = {("webhooks",): webhooks.lag()}
        names = publishers.configured_names(self.app.config.get("EVENT_BROKERS"))
        for name in names:
            lag[(name,)] = publishing.lag(name)
        yield _gauge("thingbridge_outbox_lag_events",
                     "Events a consumer has not delivered yet (webhooks: not fanned out "
                     "plus pending deliveries; brokers: not published)", ["consumer"], lag)
        failing = publishing.failing_apps()
        yield _gauge("thingbridge_publisher_failing_apps",
                     "Apps whose last attempt to publish to the broker failed (its "
                     "publisher_cursor.last_error says why)", ["publisher"],
                     {(name,): failing.get(name, 0) for name in names})


def _gauge(name: str, documentation: str, labels: list[str], values: dict) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for label_values, value in values.items():
        family.add_metric(list(label_values), value)
    return family


def metrics_view():
    """The scrape: this server's counters, then the database gauges."""
    if not _token_matches(current_app.config.get("METRICS_TOKEN"),
                          request.headers.get("Authorization", "")):
        abort(401)
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(DatabaseGauges(current_app))
    body = generate_latest(process_registry()) + generate_latest(gauges)
    return Response(body, content_type=CONTENT_TYPE_LATEST)
