"""GET /metrics in one process: the counters the poll, provider session, actions and requests
feed, the gauges read from the database at scrape time, the poll tallies the console shows,
and the optional bearer token."""

from __future__ import annotations

import datetime
import socket

import requests
from flows import owm_client, poll_due
from helpers import PUBLIC_BASE_URL, SECRET_KEY, wait_until
from prometheus_client.parser import text_string_to_metric_families

from thingbridge.connectors import poll_tally
from thingbridge.db import utcnow
from thingbridge.models import ConnectorClient, PollTally
from thingbridge.observability import exposition
from thingbridge_workers import polling


def scrape(http) -> dict[tuple, float]:
    """Every sample of a scrape: {(name, (label, value), ...): value}."""
    resp = http.get("/metrics")
    assert resp.status_code == 200, resp.data
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.get_data(as_text=True))
            for s in family.samples}


def sample(samples, name, **labels) -> float:
    return samples.get((name, *sorted(labels.items())), 0.0)


def test_polls_provider_answers_and_clients_are_measured(http, api, owm_sim):
    before = scrape(http)
    started = owm_client(api, "Berlin")
    failing = owm_client(api.as_subject("bob"), "Paris")
    assert polling.poll(started) == "ok"
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "error_500"}, timeout=5)
    assert polling.poll(failing) == "retry"
    after = scrape(http)

    def grew(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("thingbridge_polls_total", connector="openweathermap", outcome="ok") == 1
    assert grew("thingbridge_polls_total", connector="openweathermap", outcome="retry") == 1
    assert grew("thingbridge_poll_duration_seconds_count", connector="openweathermap") == 2
    assert grew("thingbridge_provider_requests_total", connector="openweathermap",
                code="500") >= 1
    assert grew("thingbridge_provider_requests_total", connector="openweathermap",
                code="200") >= 1
    # Gauges: the database as it is now, every status present (zeros included).
    assert sample(after, "thingbridge_clients", connector="openweathermap",
                  status="STARTED") == 1
    assert sample(after, "thingbridge_clients", connector="openweathermap",
                  status="STARTING") == 1
    assert ("thingbridge_clients", ("connector", "netatmo"), ("status", "ERROR")) in after
    assert sample(after, "thingbridge_poll_interval_seconds", connector="openweathermap") == 600
    assert 0 <= sample(after, "thingbridge_client_staleness_seconds",
                       connector="openweathermap") < 600
    # No label names a subject, client or app.
    assert not [key for key in after if any(v in ("alice", "bob", started) for _, v in key[1:])]



def test_the_poll_backlog_is_measured(http, api, make_app, owm_sim):
    """How many clients are due and not sent to a worker yet, and how long the longest-waiting
    has been due: an operator's measure of workers (or a dispatcher) falling behind."""
    late, sent, soon = (owm_client(api.as_subject(who), city) for who, city in (
        ("alice", "Berlin"), ("bob", "Paris"), ("carol", "Rome")))
    now = utcnow()
    for client_id, fields in ((late, dict(next_poll_at=now - datetime.timedelta(seconds=90))),
                              (sent, dict(next_poll_at=now - datetime.timedelta(minutes=5),
                                          lease_token="claimed",
                                          leased_until=now + datetime.timedelta(minutes=1))),
                              (soon, dict(next_poll_at=now + datetime.timedelta(minutes=1)))):
        ConnectorClient.update(**fields).where(ConnectorClient.id == client_id).execute()
    from thingbridge.auth import credentials
    stopped = make_app("stopped")
    stopped_client = owm_client(stopped)
    credentials.disable(stopped.model)
    ConnectorClient.update(next_poll_at=now - datetime.timedelta(days=2)).where(
        ConnectorClient.id == stopped_client).execute()  # the dispatcher sends it not
    samples = scrape(http)
    assert sample(samples, "thingbridge_polls_waiting_clients", connector="openweathermap") == 1
    assert 90 <= sample(samples, "thingbridge_poll_wait_seconds", connector="openweathermap") \
        < 150
    assert ("thingbridge_polls_waiting_clients", ("connector", "netatmo")) in samples
    assert sample(samples, "thingbridge_poll_wait_seconds", connector="netatmo") == 0

def test_staleness_is_the_oldest_success_among_started_clients(http, api, owm_sim):
    client_id = owm_client(api)
    assert polling.poll(client_id) == "ok"
    an_hour_ago = utcnow().replace(microsecond=0) - datetime.timedelta(hours=1)
    ConnectorClient.update(last_success_at=an_hour_ago).where(
        ConnectorClient.id == client_id).execute()
    staleness = sample(scrape(http), "thingbridge_client_staleness_seconds",
                       connector="openweathermap")
    assert 3600 <= staleness < 3600 + 60


def test_outbox_lag_counts_unsent_webhook_events(http, api, owm_sim):
    assert api.post("/api/v1/webhooks", json={"url": "http://localhost:9/hook"}
                    ).status_code == 201
    owm_client(api)  # one connector.client.created event nobody has fanned out yet
    assert sample(scrape(http), "thingbridge_outbox_lag_events", consumer="webhooks") == 1


def test_requests_are_counted_by_endpoint_never_by_path(http, api):
    before = scrape(http)
    for _ in range(3):
        api.get("/api/v1/connectors/clients/no-such-client")
    http.get("/no/such/route")
    after = scrape(http)
    assert sample(after, "thingbridge_http_requests_total", endpoint="clients.client",
                  code="404") - sample(before, "thingbridge_http_requests_total",
                                       endpoint="clients.client", code="404") == 3
    assert sample(after, "thingbridge_http_requests_total", endpoint="unmatched",
                  code="404") >= 1
    assert not [key for key in after if any("no-such-client" in v for _, v in key[1:])]


def test_requests_get_an_id_and_keep_a_plain_one_of_their_own(http):
    assert len(http.get("/health").headers["X-Request-Id"]) == 32
    assert http.get("/health", headers={"X-Request-Id": "abc-123"}
                    ).headers["X-Request-Id"] == "abc-123"
    hostile = "x" * 65
    assert http.get("/health", headers={"X-Request-Id": hostile}
                    ).headers["X-Request-Id"] != hostile


def test_metrics_token_when_set(http, flask_app, monkeypatch):
    monkeypatch.setitem(flask_app.config, "METRICS_TOKEN", "s3cret")
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    resp = http.get("/metrics", headers={"Authorization": "Bearer \u00e9".encode("latin-1")})
    assert resp.status_code == 401 and resp.json["status"] == 401
    assert http.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_workers_metrics_port_takes_the_same_token(monkeypatch):
    """A worker's port may listen beyond loopback (--metrics-host 0.0.0.0): guarded alike."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(exposition.WORKER_PORT, str(port))
    server = exposition.start_worker_server("s3cret")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        refused = requests.get(url, timeout=5)
        assert refused.status_code == 401 and refused.json()["error"] == "UNAUTHORIZED"
        assert requests.get(url, headers={"Authorization": "Bearer wrong"},
                            timeout=5).status_code == 401
        served = requests.get(url, headers={"Authorization": "Bearer s3cret"}, timeout=5)
        assert served.status_code == 200 and "thingbridge_polls_total" in served.text
    finally:
        server.shutdown()
        server.server_close()


def test_poll_tallies_add_up_per_app_and_minute(api, make_app, owm_sim):
    poll_tally.flush()  # counts of earlier tests
    PollTally.delete().execute()
    other = make_app("app-b")
    mine, theirs = owm_client(api), owm_client(other)
    for _ in range(3):
        assert poll_due(mine) == "ok"
    assert poll_due(theirs) == "ok"
    requests.post(f"{owm_sim}/_sim/control", json={"mode": "error_500"}, timeout=5)
    assert poll_due(mine) == "retry"
    poll_tally.flush()
    hour = poll_tally.last_hour(api.model)
    assert len(hour) == 12 and sum(ok for _, ok, _ in hour) == 3
    assert sum(failed for _, _, failed in hour) == 1
    assert sum(ok for _, ok, _ in poll_tally.last_hour(other.model)) == 1
    # An app deleted between its poll and the flush: the other apps' counts still go in.
    assert poll_due(mine) == "retry"
    poll_tally.record("no-such-app", "openweathermap", True)
    poll_tally.flush()
    assert sum(failed for _, _, failed in poll_tally.last_hour(api.model)) == 2
    assert poll_tally.prune(utcnow() + poll_tally.KEEP * 2) == 2


def test_poll_tallies_wait_out_a_database_outage(api, second_app, monkeypatch, caplog):
    """The timer thread's flush met the database gone: it raised before it had done anything,
    started no timer again, and this process's counts were never written from then on."""
    from thingbridge import db as database

    poll_tally.flush()
    PollTally.delete().execute()
    monkeypatch.setattr(poll_tally, "FLUSH_EVERY", 0.2)
    live = database.db.obj
    second_app({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/away",
                "SECRET_KEYS": SECRET_KEY, "PUBLIC_BASE_URL": PUBLIC_BASE_URL})
    for _ in range(2):
        poll_tally.record(api.model.id, "openweathermap", True)
    wait_until(lambda: "kept for the next flush" in caplog.text, message="a flush that failed")
    database.db.initialize(live)  # the database is back: the timers alone write the counts
    wait_until(lambda: [(ok, failed) for _, ok, failed in poll_tally.last_hour(api.model)
                        if ok or failed] == [(2, 0)], message="kept counts written")
