"""Operations: Prometheus metrics and their scrape endpoints, and structured logs with a
request id that follows a request into its tasks."""

from __future__ import annotations

import time

from flask import g, request

from thingbridge.observability import exposition, logs, metrics


def init_app(app) -> None:
    """Log format, ``GET /metrics``, and every request timed, counted and given an id."""
    logs.configure(app.config["LOG_FORMAT"])
    app.add_url_rule("/metrics", "metrics", exposition.metrics_view)

    @app.before_request
    def _start():
        g.request_started = time.perf_counter()
        logs.start_request(request.headers.get(logs.HEADER))

    @app.after_request
    def _answered(response):
        response.headers[logs.HEADER] = logs.request_id.get()
        metrics.http_answered(request.endpoint, response.status_code,
                              time.perf_counter() - g.request_started)
        return response

    @app.teardown_request
    def _forget(exc):
        logs.request_id.set(None)  # the thread's next log lines are not this request's
