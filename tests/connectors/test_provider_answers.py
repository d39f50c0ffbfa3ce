"""Providers that lie, over real sockets: answers that trickle, never end, explode when
decompressed, come in a shape no connector expects, or carry statuses the provider does not
document. Each is a transient failure (the host backs off and keeps the client's status), never
a held thread, a crashed task or a client put in ERROR for good."""

from __future__ import annotations

import gzip
import socket
import time

import pytest
import requests
from helpers import OWM_KEY, wait_until
from raw_receivers import answering, read_request

from thingbridge.connectors import oauth
from thingbridge.connectors.contract import (
    ClientContext,
    ConfigError,
    InstanceRefused,
    ReauthRequired,
    TransientError,
)
from thingbridge.connectors.plugin_call import guarded
from thingbridge.http import addresses, bounded
from thingbridge.observability import metrics
from thingbridge_netatmo import client as netatmo
from thingbridge_netatmo.connector import NetatmoConnector
from thingbridge_openweathermap.connector import OpenWeatherMapConnector

JSON = b"Content-Type: application/json\r\n"


def _trickle(head: bytes, drip: bytes):
    """Sends ``head``, then ``drip`` every 0.2 s for a minute."""
    def handler(conn):
        read_request(conn.makefile("rb"))
        conn.sendall(head)
        for _ in range(300):
            conn.sendall(drip)
            time.sleep(0.2)
    return handler


def _endless(conn):
    read_request(conn.makefile("rb"))
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        conn.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")


def _session() -> requests.Session:
    return bounded.mount(metrics.ProviderSession("test"))


def _count(label: str) -> float:
    return metrics.PROVIDER_REQUESTS.labels("test", label)._value.get()


@pytest.mark.parametrize("head, drip", [
    (b"HTTP/1.1 200 OK\r\n", b"X-Drip: 1\r\n"),  # headers that never end
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"x")])  # a body, a byte at a time
def test_an_answer_that_trickles_is_cut_at_the_timeout(servers, head, drip):
    server = servers(_trickle(head, drip))
    timeouts = _count("timeout")
    # Each byte comes well within the per-read timeout: only the whole call's deadline ends it.
    with pytest.raises(requests.ReadTimeout, match="no whole answer in time"):
        _session().get(server.url(), timeout=1)
    assert _count("timeout") == timeouts + 1


def test_an_endless_or_exploding_body_is_cut_at_max_answer(servers):
    bomb = gzip.compress(b"0" * (bounded.MAX_ANSWER * 4))
    assert len(bomb) < bounded.MAX_ANSWER // 100
    for handler in (_endless, answering(b"200 OK", b"Content-Encoding: gzip\r\n", bomb)):
        with pytest.raises(bounded.AnswerTooLarge):
            _session().get(servers(handler).url(), timeout=10)


def test_bounded_calls_keep_their_connection_alive(servers):
    server, session = servers(answering(b"200 OK", JSON, b'{"a": 1}')), _session()
    assert [session.get(server.url(), timeout=5).json() for _ in range(3)] == [{"a": 1}] * 3
    assert server.connections == 1


@pytest.mark.parametrize("status, body, expected", [
    (b"200 OK", b"[]", "not a JSON object"),
    (b"200 OK", b"5", "not a JSON object"),
    (b"408 Request Timeout", b"<html>proxy</html>", "answered 408"),
    (b"503 Service Unavailable", b'{"error": {"code": 26}}', "answered 503"),
    # A proxy's or gateway's refusal, not Netatmo's: no verdict on the grant.
    (b"403 Forbidden", b'{"message": "Forbidden"}', "403 without an error code"),
    (b"200 OK", b'{"error": "x"}', "200 without an error code"),
    (b"302 Found", b'{"body": {"devices": []}}', "302 without an error code")])
def test_netatmo_answers_of_no_known_shape_are_transient(servers, status, body, expected):
    server = servers(answering(status, JSON, body))
    with pytest.raises(TransientError, match=expected):
        netatmo.call(_session(), "GET", server.url(), "token", 5)


def test_a_netatmo_429_is_waited_out_whatever_its_body(servers):
    server = servers(answering(b"429 Too Many Requests", b"Retry-After: 900\r\n", b"<html/>"))
    with pytest.raises(TransientError, match="usage limit") as info:
        netatmo.call(_session(), "GET", server.url(), "token", 5)
    assert info.value.retry_after == 900


@pytest.mark.parametrize("code, error", [
    (13, ReauthRequired), (30, ReauthRequired), (5, InstanceRefused), (9, TransientError),
    (41, TransientError)])
def test_only_netatmos_verdict_codes_stop_the_client(servers, code, error):
    """A scope the grant lacks needs a new consent, a deactivated application the operator;
    a device not found or unreachable (9, 41) is no reason to stop polling for good."""
    server = servers(answering(b"403 Forbidden", JSON,
                               b'{"error": {"code": %d, "message": "No"}}' % code))
    with pytest.raises(error, match="No") as info:
        netatmo.call(_session(), "GET", server.url(), "token", 5)
    assert type(info.value) is error


def test_a_netatmo_credential_check_answered_with_a_list_is_transient(servers):
    server = servers(answering(b"200 OK", JSON, b"[]"))
    with pytest.raises(TransientError, match="invalid JSON"):
        netatmo.check_credentials(_session(), server.url(), "id", "secret", 5)


@pytest.mark.parametrize("status, error", [
    (b"403 Forbidden", TransientError), (b"408 Request Timeout", TransientError),
    (b"302 Found", TransientError), (b"400 Bad Request", ConfigError),
    (b"401 Unauthorized", InstanceRefused), (b"404 Not Found", ConfigError)])
def test_owm_statuses_it_does_not_document_are_transient(servers, status, error):
    server = servers(answering(status, JSON, b'{"message": "no"}'))
    owm = OpenWeatherMapConnector(base_url=f"http://127.0.0.1:{server.port}",
                                  session=_session(), timeout=5)
    with pytest.raises(error) as info:
        owm.fetch(ClientContext({"app_key": OWM_KEY}, {"city": "Berlin"}))
    assert type(info.value) is error


def test_an_instance_checked_against_a_lying_provider_is_502(api, flask_app, servers,
                                                            monkeypatch):
    server = servers(answering(b"200 OK", JSON, b"[]"))
    monkeypatch.setitem(flask_app.config, "NETATMO_BASE_URL", f"http://127.0.0.1:{server.port}")
    resp = api.post("/api/v1/connectors/instances", json={
        "connector_type_id": "netatmo", "configuration": {
            "client_id": "id", "client_secret": "secret",
            "origin_callback_uri": "https://app.example.com/connected"}})
    assert resp.status_code == 502 and resp.json["error"] == "PROVIDER_UNAVAILABLE", resp.json
    assert server.connections == 1


def test_calls_within_a_budget_end_with_it(servers):
    """A poll's calls share its budget (the lease): each ends by it, and one made after it
    passed is not sent at all."""
    slow = servers(_trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"x"))
    session = _session()
    with bounded.within(1):
        with pytest.raises(requests.ReadTimeout):
            session.get(slow.url(), timeout=30)
        with pytest.raises(requests.ReadTimeout):
            session.get(slow.url(), timeout=30)
    assert slow.connections == 1


def test_every_call_on_a_kept_alive_connection_is_watched_within_a_budget(servers):
    """Within a budget shorter than their timeout, calls share one deadline: the third call on
    one connection was taken for the first (already watched) and ran unwatched."""
    def provider(conn):
        stream = conn.makefile("rb")
        for _ in range(2):
            read_request(stream)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        read_request(stream)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(300):
            conn.sendall(b"x")
            time.sleep(0.2)

    server, session = servers(provider), _session()
    with bounded.within(5):  # ample for two quick answers on the slowest machine
        assert [session.get(server.url(), timeout=30).json() for _ in range(2)] == [{}, {}]
        with pytest.raises(requests.ReadTimeout):
            session.get(server.url(), timeout=30)
    assert server.connections == 1


def test_a_provider_name_that_does_not_resolve_in_time_ends_with_the_call(hanging_dns):
    timeouts = _count("timeout")
    with pytest.raises(requests.ConnectTimeout, match="did not resolve within"):
        _session().get("http://api.provider.hang/data", timeout=1)
    assert not hanging_dns.is_set() and _count("timeout") == timeouts + 1


def test_a_slow_lookup_leaves_the_connect_only_what_is_left(monkeypatch):
    """The lookup and the connect share the call's deadline: the connect had the whole timeout
    again after a lookup that had used most of it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = [socket.socket() for _ in range(8)]  # the accept queue is full: a connect hangs
    for sock in queued:
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))

    def slow(host, port):
        time.sleep(3)
        return ["127.0.0.1"]

    monkeypatch.setattr(addresses, "resolver", slow)
    started = time.monotonic()
    try:
        with pytest.raises(requests.ConnectTimeout):
            _session().get(f"http://api.provider.example:{port}/data", timeout=4)
        # Ended by the 4 s deadline, not 3 s of lookup and then 4 s of connect.
        assert time.monotonic() - started < 6.5
    finally:
        for sock in [*queued, listener]:
            sock.close()


def test_no_redirect_is_followed_not_even_with_a_client_secret(servers):
    elsewhere = servers(answering(b"200 OK", JSON, b'{"access_token": "EVIL"}'))
    redirecting = servers(answering(b"307 Temporary Redirect",
                                    f"Location: {elsewhere.url()}\r\n".encode()))
    with pytest.raises(TransientError, match="TooManyRedirects"):
        netatmo.check_credentials(_session(), redirecting.url(), "id", "secret", 5)
    refresh = oauth._session(NetatmoConnector(base_url=redirecting.url()),
                             {"client_id": "id", "client_secret": "secret"})
    with pytest.raises(requests.TooManyRedirects):
        refresh.refresh_token(redirecting.url(), refresh_token="r", timeout=5)
    assert (redirecting.connections, elsewhere.connections) == (2, 0)


def test_a_provider_that_stops_answering_is_paused_then_probed(servers, monkeypatch, clean_db):
    """Each process stops sending to a provider that answered none of its last 5 calls: the
    calls fail at once, not sent, for a pause; then one probe goes out, and an answer ends the
    pause. So its due clients do not each hold a worker thread for a whole timeout."""
    from thingbridge.http import breaker

    answers = []

    def provider(conn):
        stream = conn.makefile("rb")
        read_request(stream)
        if answers:
            conn.sendall(answers[0])
        else:
            stream.read()  # nothing, until the caller gives up and closes

    server = servers(provider)
    owm = OpenWeatherMapConnector(base_url=f"http://127.0.0.1:{server.port}",
                                  session=_session(), timeout=0.5)
    context = ClientContext({"app_key": OWM_KEY}, {"city": "Berlin"})
    paused = _count("paused")
    for sent in range(1, breaker.FAILURES + 1):
        with pytest.raises(TransientError, match="OpenWeatherMap unreachable"):
            guarded(owm, owm.fetch, context)
        wait_until(lambda sent=sent: server.connections == sent,  # accepted on its thread
                   message=f"call {sent} at the provider")
    for _ in range(3):
        with pytest.raises(TransientError, match="answered none of this process's last 5"):
            guarded(owm, owm.fetch, context)
    assert server.connections == breaker.FAILURES and _count("paused") == paused + 3
    later = time.monotonic() + breaker.FIRST_PAUSE  # the pause is over: one probe goes out
    monkeypatch.setattr(breaker, "_clock", lambda: later)
    answers.append(b"HTTP/1.1 401 Unauthorized\r\n" + JSON  # one answer per connection
                   + b"Connection: close\r\nContent-Length: 2\r\n\r\n{}")
    for _ in range(2):  # answered (a verdict on the key): the calls go out again
        with pytest.raises(ConfigError):
            guarded(owm, owm.fetch, context)
    wait_until(lambda: server.connections == breaker.FAILURES + 2, message="both calls sent")


def test_a_call_whose_budget_is_spent_is_not_the_providers_silence(servers, clean_db):
    """A call made after its work's budget ran out is not sent; counting it as unanswered
    would pause a provider that answered every call it got."""
    from thingbridge.http import breaker

    server, session = servers(answering(b"200 OK", JSON, b'{"a": 1}')), _session()
    with bounded.within(0):
        for _ in range(breaker.FAILURES + 1):
            with pytest.raises(requests.ReadTimeout):
                session.get(server.url(), timeout=5)
    assert session.get(server.url(), timeout=5).json() == {"a": 1}
    assert server.connections == 1
