"""The platform's Prometheus instruments, and the one-line calls that feed them.

Labels are bounded sets (connector type, outcome, status code, endpoint name): never a subject,
client or app id. Each call is a few in-memory increments (in multiprocess mode, writes to a
memory-mapped file), so the poll path pays microseconds and no database query.
"""

from __future__ import annotations

import functools
import time

import requests
from prometheus_client import Counter, Histogram

from thingbridge.connectors import poll_tally
from thingbridge.connectors.contract import InstanceRefused, ReauthRequired
from thingbridge.db import utcnow
from thingbridge.http.breaker import ProviderPaused

POLLS = Counter("thingbridge_polls", "Polls of connector clients, by outcome",
                ["connector", "outcome"])
POLL_SECONDS = Histogram("thingbridge_poll_duration_seconds",
                         "One poll: token, provider fetch, mapping and the database writes",
                         ["connector"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
PROVIDER_REQUESTS = Counter("thingbridge_provider_requests",
                            "Provider API requests by answer (status code, timeout or error; "
                            "paused: not sent, the provider answered none of the last calls)",
                            ["connector", "code"])
TOKEN_REFRESHES = Counter("thingbridge_token_refreshes", "Provider OAuth token refreshes",
                          ["connector", "outcome"])
ACTIONS = Counter("thingbridge_actions", "Action requests that reached a final status",
                  ["outcome"])
ACTION_SECONDS = Histogram("thingbridge_action_duration_seconds",
                           "From an action's trigger to its final status",
                           buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
ACTION_REPLAYS = Counter("thingbridge_action_replays",
                        "Action triggers answered with the request an earlier trigger with the "
                        "same Idempotency-Key recorded: replayed, or refused (another trigger)",
                        ["outcome"])
WEBHOOK_DELIVERIES = Counter("thingbridge_webhook_deliveries",
                             "Webhook delivery attempts: delivered, retry (kept for another "
                             "attempt) or dead (dead-lettered)", ["outcome"])
HTTP_REQUESTS = Counter("thingbridge_http_requests", "API and console requests answered",
                        ["endpoint", "code"])
HTTP_SECONDS = Histogram("thingbridge_http_request_duration_seconds",
                         "Time to answer an API or console request", ["endpoint"])

# Outcomes of polling.poll that tried the provider: the rest never left the host.
POLL_SUCCESS, POLL_FAILURES = ("ok",), ("retry", "error", "exception")


def observe_poll(poll):
    """Decorate ``poll(client) -> outcome word``: count the outcome, time it, and tally it for
    the client's app (the console's last hour). An exception counts as ``exception``."""

    @functools.wraps(poll)
    def observed(client, *args, **kwargs):
        started, outcome = time.perf_counter(), "exception"
        try:
            outcome = poll(client, *args, **kwargs)
            return outcome
        finally:
            POLLS.labels(client.type_id, outcome).inc()
            POLL_SECONDS.labels(client.type_id).observe(time.perf_counter() - started)
            if outcome in POLL_SUCCESS or outcome in POLL_FAILURES:
                poll_tally.record(client.app_id, client.type_id, outcome in POLL_SUCCESS)

    return observed


class ProviderSession(requests.Session):
    """A requests session that counts every provider answer by status code (or ``timeout``,
    ``error`` when none came), so plugins are measured without knowing it."""

    def __init__(self, connector: str):
        super().__init__()
        self.connector = connector

    def send(self, request, **kwargs):
        try:
            response = super().send(request, **kwargs)
        except ProviderPaused:
            PROVIDER_REQUESTS.labels(self.connector, "paused").inc()
            raise
        except requests.Timeout:
            PROVIDER_REQUESTS.labels(self.connector, "timeout").inc()
            raise
        except requests.RequestException:
            PROVIDER_REQUESTS.labels(self.connector, "error").inc()
            raise
        PROVIDER_REQUESTS.labels(self.connector, str(response.status_code)).inc()
        return response


def token_refreshed(connector: str, error: Exception | None = None) -> None:
    """A refresh succeeded, or failed with ``error`` (ReauthRequired: the grant is gone;
    InstanceRefused: the app's OAuth client is refused, for every end user)."""
    outcome = "ok" if error is None else (
        "reauth_required" if isinstance(error, ReauthRequired) else
        "instance_refused" if isinstance(error, InstanceRefused) else "failed")
    TOKEN_REFRESHES.labels(connector, outcome).inc()


def action_finished(status: str, error: str | None, created_at) -> None:
    ACTIONS.labels("timeout" if error == "timeout" else status.lower()).inc()
    ACTION_SECONDS.observe(max((utcnow() - created_at).total_seconds(), 0.0))


def action_replayed(outcome: str) -> None:
    """A trigger whose Idempotency-Key was taken: ``replayed`` or ``refused``."""
    ACTION_REPLAYS.labels(outcome).inc()


def webhook_attempted(outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome.lower()).inc()


def http_answered(endpoint: str | None, code: int, seconds: float) -> None:
    endpoint = endpoint or "unmatched"  # no route: never the raw path (unbounded)
    HTTP_REQUESTS.labels(endpoint, str(code)).inc()
    HTTP_SECONDS.labels(endpoint).observe(seconds)
