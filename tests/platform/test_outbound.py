"""The outbound client against real receivers on loopback: the address policy at send time,
DNS rebinding, one deadline per attempt, raw capped reads, keep-alive."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import uuid

import pytest
from helpers import LOOPBACK
from raw_receivers import answering, read_request

from thingbridge.http import addresses, lookups, outbound

OPEN = addresses.parse_allow(LOOPBACK)
CLOSED = addresses.parse_allow("")
# Every form of an internal address an app might try (issue 11), plus the IPv6 wrappers.
INTERNAL_URLS = [
    "https://127.0.0.1:6379/", "https://10.0.0.5/", "https://169.254.169.254/",
    "https://[::1]/", "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/", "https://2130706433/",
    "https://0x7f000001/", "https://017700000001/", "https://127.1/", "https://localhost/",
    "https://172.16.0.1/", "https://192.168.1.1/", "https://100.64.0.1/", "https://224.0.0.1/",
    "https://[fe80::1]/", "https://[fd00::1]/", "https://[::]/", "https://[::127.0.0.1]/",
    "https://[2002:7f00:1::]/", "https://[64:ff9b::a00:5]/", "https://[ff02::1]/",
    "https://240.0.0.1/", "https://redis.internal/",
]
INTERNAL_NAMES = {"redis.internal": ["10.1.2.3"], "hooks.example": ["93.184.216.34"]}


@pytest.fixture
def fake_dns(monkeypatch):
    """Names resolve from this table (others as usual); tests change it mid-way."""
    table = dict(INTERNAL_NAMES)

    def resolve(host, port):
        return table[host] if host in table else addresses._getaddrinfo(host, port)

    monkeypatch.setattr(addresses, "resolver", resolve)
    return table


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_addresses_are_refused_at_send(url, fake_dns):
    answer = outbound.post(url, b"{}", {}, 5, CLOSED)
    assert (answer.status, answer.reason) == (None, "refused address")


def test_a_name_rebound_to_loopback_after_registration_is_refused(servers, fake_dns):
    server = servers(answering(b"204 No Content"))
    url = f"http://hooks.example:{server.port}/hook"
    assert addresses.allowed_addresses("hooks.example", server.port, CLOSED)  # public now
    fake_dns["hooks.example"] = ["127.0.0.1"]
    answer = outbound.post(url, b"{}", {}, 5, CLOSED)
    assert answer.reason == "refused address" and server.connections == 0


def test_allowed_loopback_is_reached_with_the_original_host_and_kept_alive(servers,
                                                                           fake_dns):
    hosts = []

    def handler(conn):
        stream = conn.makefile("rb")
        while True:
            line = stream.readline()
            if not line:
                return
            while line not in (b"\r\n", b""):
                if line.lower().startswith(b"host:"):
                    hosts.append(line.split(b":", 1)[1].strip().decode())
                line = stream.readline()
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = servers(handler)
    fake_dns["receiver.test"] = ["127.0.0.1"]
    for _ in range(3):
        answer = outbound.post(f"http://receiver.test:{server.port}/h", b"", {}, 5, OPEN)
        assert answer.status == 204
    assert hosts == [f"receiver.test:{server.port}"] * 3
    assert server.connections == 1  # one kept-alive connection for all three


def test_redirects_are_not_followed(servers):
    target = servers(answering(b"204 No Content"))
    redirect = servers(answering(b"302 Found", f"Location: {target.url()}\r\n".encode()))
    answer = outbound.post(redirect.url(), b"{}", {}, 5, OPEN)
    assert answer.status == 302 and target.connections == 0


def test_a_trickling_receiver_cannot_extend_the_deadline(servers):
    stop = threading.Event()

    def trickle(conn):
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"." * 1000:
            if stop.wait(0.2):
                return
            conn.sendall(bytes([byte]))

    server = servers(trickle)
    deadline = 1.0
    started = time.monotonic()
    answer = outbound.post(server.url(), b"{}", {}, deadline, OPEN)
    took = time.monotonic() - started
    stop.set()
    assert answer.reason == "timeout"
    # Each byte comes well within a socket timeout; only the total deadline can end this.
    assert took < deadline * 3, took


def _then(first: bytes, drip: bytes = b"", close: bool = False):
    """Answers ``first`` at once, then ``drip`` a byte every 0.2 s (or closes)."""
    stop = threading.Event()

    def handler(conn):
        read_request(conn.makefile("rb"))  # all of it: closing on unread bytes sends a reset
        conn.sendall(first)
        if close:
            # An orderly close (FIN), then wait for the client's: what a receiver that stops
            # mid-answer looks like, never a reset.
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(10)
            while conn.recv(65536):
                pass
            return
        for byte in drip * 100:
            if stop.wait(0.2):
                return
            conn.sendall(bytes([byte]))
        stop.wait(30)
    return handler, stop


@pytest.mark.parametrize("first, drip, close, reason", [
    (b"HTTP/1.1 200 OK\r\n", b"X-Slow: .\r\n", False, "timeout"),  # headers never end
    (b"HTTP/1.1 200 OK\r\n", b"", False, "timeout"),  # then nothing
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"x", False, "timeout"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", b"", True, "invalid http answer"),  # closed mid-way
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", b"", True,
     "invalid http answer")])
def test_an_answer_that_never_completes_is_not_its_status(servers, first, drip, close,
                                                          reason):
    """Its status line came, so http.client made an answer of it: a "200" that delivered a
    webhook or COMPLETED an action whose receiver never finished answering."""
    handler, stop = _then(first, drip, close)
    # A receiver that closes gets a deadline no slow machine reaches; one that trickles, one
    # it soon passes.
    answer = outbound.post(servers(handler).url(), b"{}", {}, 10.0 if close else 1.0, OPEN)
    stop.set()
    assert (answer.status, answer.reason) == (None, reason)


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_compressed_bomb_is_never_inflated(servers):
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)  # 200 MiB inside
    server = servers(answering(b"500 Internal Server Error", b"Content-Encoding: gzip\r\n",
                               bomb))
    before = rss_kib()
    answer = outbound.post(server.url(), b"{}", {}, 5, OPEN)
    assert answer.status == 500 and len(answer.text) <= outbound.EXCERPT
    assert rss_kib() - before < 4 * 1024  # KiB: the 64 KiB read, not the 200 MiB inside


def test_long_answers_are_cut_and_failures_are_classified(servers):
    server = servers(answering(b"400 Bad Request", body=b"x" * 10_000_000))
    answer = outbound.post(server.url(), b"{}", {}, 5, OPEN)
    assert answer.status == 400 and answer.text == "x" * outbound.EXCERPT
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed_port = probe.getsockname()[1]
    answer = outbound.post(f"http://127.0.0.1:{closed_port}/", b"{}", {}, 5, OPEN)
    assert (answer.status, answer.reason) == (None, "connection refused")
    tls = servers(lambda conn: conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n"))  # not TLS
    answer = outbound.post(f"https://127.0.0.1:{tls.port}/", b"{}", {}, 5, OPEN)
    assert (answer.status, answer.reason) == (None, "tls error")


def test_plain_http_needs_an_operator_opened_address(fake_dns):
    answer = outbound.post("http://hooks.example/", b"{}", {}, 5, CLOSED)
    assert answer.reason == "refused address (plain http)"


def test_an_answer_that_is_not_http_is_named_so(servers):
    handler, _stop = _then(b"\x00\x01garbage\r\n\r\n", close=True)
    answer = outbound.post(servers(handler).url(), b"{}", {}, 5, OPEN)
    assert (answer.status, answer.reason) == (None, "invalid http answer")


def test_a_name_server_that_never_answers_costs_the_deadline(hanging_dns):
    answers = []
    sender = threading.Thread(target=lambda: answers.append(
        outbound.post("https://hooks.hang/in", b"{}", {}, 1, OPEN)))
    sender.start()
    sender.join(60)  # without a bound on the lookup it would still be waiting
    assert answers and (answers[0].status, answers[0].reason) == (None, "timeout")
    assert not hanging_dns.is_set()


def test_an_apps_hanging_names_cost_only_its_own_lookups(hanging_dns):
    app = f"app-{uuid.uuid4()}"  # an owner of its own: slots of earlier tests do not count
    for i in range(lookups.PER_OWNER):
        assert outbound.post(f"https://n{i}.hang/", b"{}", {}, 0.05, OPEN, app).reason == \
            "timeout"
    # Each of its lookups still hangs: its next one waits for a slot until its deadline...
    with pytest.raises(TimeoutError, match="did not resolve within"):
        addresses.resolve("localhost", 80, 0.2, app)
    # ...while another app's names and a provider's resolve at once.
    assert addresses.resolve("localhost", 80, 60, f"other-{app}")
    assert addresses.resolve("localhost", 80, 60, "provider:localhost")
    hanging_dns.set()  # the name server answers (a failure): the slots are free again
    assert addresses.ip_address("127.0.0.1") in addresses.resolve("localhost", 80, 60, app)


def test_hanging_lookups_hold_a_bounded_number_of_threads(hanging_dns):
    apps = [f"app-{uuid.uuid4()}" for _ in range(lookups.MAX_UNDER_WAY // lookups.PER_OWNER)]
    for app in apps:
        for i in range(lookups.PER_OWNER):
            with pytest.raises(TimeoutError):
                addresses.resolve(f"n{i}.hang", 443, 0.01, app)
    with pytest.raises(TimeoutError):  # every thread the process allows hangs
        addresses.resolve("localhost", 80, 0.2, "provider:localhost")
    assert addresses.resolve("127.0.0.1", 80, 60, "provider:localhost")  # no lookup needed
    hanging_dns.set()
    assert addresses.resolve("localhost", 80, 60, "provider:localhost")
