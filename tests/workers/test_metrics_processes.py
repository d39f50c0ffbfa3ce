"""Metrics, logs and errors across real processes: ``thingbridge api`` (gunicorn, two
processes, one scrape summing both; what gunicorn answers itself, in the standard error body),
``thingbridge worker --metrics-port`` (a prefork pool's polls on the worker's own port), and
JSON log lines whose request id follows an API call into the poll it enqueued."""

from __future__ import annotations

import json
import os
import signal
import socket

import pytest
import requests
from broker_helpers import free_port
from flows import owm_instance
from helpers import wait_until
from prometheus_client.parser import text_string_to_metric_families
from worker_fixtures import children


def total(url: str, name: str, **labels) -> float:
    """The sum of ``name``'s samples at ``url`` whose labels include ``labels``."""
    try:
        text = requests.get(url, timeout=5).text
    except (requests.ConnectionError, requests.Timeout):
        # Not listening yet, or listening while its workers still boot (a loaded machine):
        # the caller's wait_until bounds how long that may last.
        return -1.0
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == name and labels.items() <= s.labels.items())


def test_one_scrape_sums_every_gunicorn_process(run, clean_db, tmp_path):
    port = free_port()
    master = run("api", "--port", str(port), "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    metric = ("thingbridge_http_requests_total",)
    listed = {"endpoint": "descriptions.list_descriptions"}

    def served(count: int) -> None:
        for _ in range(count):
            assert requests.get(f"{base}/api/v1/connectors/descriptions",
                                headers={"Connection": "close"}, timeout=5).status_code == 200

    wait_until(lambda: total(f"{base}/metrics", "thingbridge_clients") >= 0, timeout=60,
               message="the API to listen")
    served(20)
    first = children(master.pid)
    assert len(first) == 2
    for pid in first:  # gunicorn replaces them; what they counted stays in their files
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: len(set(children(master.pid)) - set(first)) == 2, timeout=60,
               message="two new gunicorn processes")
    served(10)
    assert wait_until(lambda: total(f"{base}/metrics", *metric, **listed) == 30, timeout=10,
                      message="one scrape counting the requests of every process")
    counters = list((tmp_path / "metrics" / f"api-{port}").glob("counter_*.db"))
    assert len(counters) >= 2, counters  # one file per process that counted


def _raw(port: int, request: bytes) -> tuple[int, str, dict]:
    """Send ``request`` as is; the answer's status, Content-Type and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers["Content-Type"], json.loads(body)


@pytest.mark.parametrize("threads", ["1", "4"])  # gunicorn's sync and gthread workers
def test_what_gunicorn_cannot_frame_is_answered_in_the_error_body(run, api, threads):
    """gunicorn answers a request it cannot frame before the app sees it; its status, in the
    standard JSON body. A chunked body it cannot read fails while the app reads it: a 400."""
    port = free_port()
    run("api", "--port", str(port), "--workers", "1", "--threads", threads)
    wait_until(lambda: total(f"http://127.0.0.1:{port}/metrics", "thingbridge_clients") >= 0,
               timeout=60, message="the API to listen")
    hello = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    cases = [
        (b"GET /api/v1/things/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (hello + b"X-External-Subject-Id: " + b"a" * 10_000 + b"\r\n\r\n", 431),
        (hello + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431),
        (hello + b"X-A: a\x00b\r\n\r\n", 400),
        (b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         b"Content-Type: application/json\r\nAuthorization: Bearer "
         + api.token.encode() + b"\r\nX-External-Subject-Id: alice\r\n\r\nzz\r\n", 400),
    ]
    for request, expected in cases:
        status, content_type, body = _raw(port, request)
        assert (status, content_type) == (expected, "application/json"), request[:80]
        assert body["status"] == expected and body["error"] and body["description"]
    # WSGI would join a repeated subject header into a third subject ("alice,bob").
    twice = b"x-external-subject-id: alice\r\nX-External-Subject-Id: bob\r\n"
    status, _, body = _raw(port, hello + twice + b"\r\n")
    assert (status, body["description"]) == (
        400, "header X-External-Subject-Id sent more than once")


def test_apis_on_one_host_share_no_gunicorn_control_socket(run, clean_db, tmp_path):
    """gunicorn's control socket is one path per user: two APIs would bind the same one."""
    env = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": ""}
    ports = [free_port(), free_port()]
    for port in ports:
        run("api", "--port", str(port), "--workers", "1", env=env)
    for url in (f"http://127.0.0.1:{port}/metrics" for port in ports):
        wait_until(lambda url=url: total(url, "thingbridge_clients") >= 0, timeout=60,
                   message="the API to listen")
    assert not (tmp_path / ".gunicorn").exists()


def test_a_body_that_stops_arriving_is_408(run, api):
    """A sync worker waiting for a body that stopped arriving was killed at gunicorn's
    timeout, a 500; its read deadline (half that timeout) ends the wait with a 408."""
    port = free_port()
    run("api", "--port", str(port), "--workers", "1", env={"GUNICORN_CMD_ARGS": "--timeout 4"})
    wait_until(lambda: total(f"http://127.0.0.1:{port}/metrics", "thingbridge_clients") >= 0,
               timeout=60, message="the API to listen")
    status, content_type, body = _raw(port, (
        b"POST /api/v1/things HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\nAuthorization: Bearer " + api.token.encode()
        + b"\r\nX-External-Subject-Id: alice\r\n\r\n" + b'{"name": "' + b"x" * 1000))
    assert (status, content_type) == (408, "application/json")
    assert body["error"] == "REQUEST_TIMEOUT" and body["status"] == 408


def test_worker_port_reports_its_pool_and_logs_follow_the_request(run, api, owm_sim,
                                                                   worker_env):
    port = free_port()
    log = run("worker", "--metrics-port", str(port), "--concurrency=2", "-n",
              f"metrics-{port}@%h", "--without-heartbeat", "--without-gossip",
              "--without-mingle", env={"THINGBRIDGE_LOG_FORMAT": "json"}).log
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: total(url, "thingbridge_polls_total") >= 0, timeout=60,
               message="the worker's metrics port")
    owm_instance(api)
    created = api.post("/api/v1/connectors/clients", headers={"X-Request-Id": "req-console-1"},
                       json={"connector_type_id": "openweathermap",
                             "configuration": {"city": "Berlin"}})
    assert created.status_code == 201 and created.headers["X-Request-Id"] == "req-console-1"
    wait_until(lambda: total(url, "thingbridge_polls_total", connector="openweathermap",
                             outcome="ok") == 1, timeout=60, message="the first poll counted")
    assert total(url, "thingbridge_provider_requests_total", connector="openweathermap",
                 code="200") >= 1

    def poll_logged():
        lines = [json.loads(line) for line in log.read_text().splitlines()
                 if line.startswith("{")]
        return [line for line in lines if line.get("request_id") == "req-console-1"
                and line.get("task") == "thingbridge.poll_client"]

    lines = wait_until(poll_logged, timeout=30, message="the poll's log line with the id")
    assert {"time", "level", "logger", "message", "task_id"} <= lines[0].keys()
