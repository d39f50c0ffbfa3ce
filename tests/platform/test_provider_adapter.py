"""The provider sessions' transport (http.client under requests) against real loopback servers,
side by side with requests' own adapter wherever the two must agree."""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import socket
import ssl
import threading

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from raw_receivers import read_request

from thingbridge.connectors import registry
from thingbridge.http.provider_adapter import ProviderAdapter
from thingbridge.observability import metrics


def _session(adapter) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@pytest.fixture(params=["stock", "lean"])
def session(request):
    session = _session(requests.adapters.HTTPAdapter() if request.param == "stock"
                       else ProviderAdapter())
    yield session
    session.close()


@pytest.fixture
def lean():
    session = _session(ProviderAdapter())
    yield session
    session.close()


class RawServer:
    """A loopback listener running ``handler(conn)`` per connection; counts connections."""

    def __init__(self, handler, tls: ssl.SSLContext | None = None):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port, self.handler, self.tls = self.sock.getsockname()[1], handler, tls
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def url(self, path="/x", scheme="http", host="127.0.0.1"):
        return f"{scheme}://{host}:{self.port}{path}"


@pytest.fixture
def servers():
    started = []

    def start(handler, tls=None):
        started.append(RawServer(handler, tls))
        return started[-1]

    yield start
    for server in started:
        server.sock.close()


def keep_alive(body=b'{"ok": true}', headers=b""):
    """HTTP/1.1 answers on one connection for as long as the client keeps it."""
    def handler(conn):
        stream = conn.makefile("rb")
        while read_request(stream) is not None:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n" + headers
                         + b"\r\n" + body)
    return handler


def one_answer(raw: bytes):
    """Reads one request, writes ``raw`` and closes (as an HTTP/1.0 server does)."""
    def handler(conn):
        read_request(conn.makefile("rb"))
        conn.sendall(raw)
    return handler


def test_answers_come_back_as_requests_responses(session, servers):
    server = servers(one_answer(b"HTTP/1.0 201 Created\r\nContent-Type: application/json; "
                                b"charset=utf-8\r\nX-A: 1\r\nX-A: 2\r\nRetry-After: 7\r\n\r\n"
                                b'{"v": "\xc3\xa9"}'))
    resp = session.get(server.url("/p"), params={"q": "a b", "n": 1}, timeout=5)
    assert resp.status_code == 201 and resp.reason == "Created" and resp.ok
    assert resp.json() == {"v": "é"} and resp.text == '{"v": "é"}'
    assert resp.headers["retry-after"] == "7" and resp.headers["X-A"] == "1, 2"
    assert resp.url == server.url("/p") + "?q=a+b&n=1" and resp.encoding == "utf-8"
    resp.raise_for_status()


def test_what_is_sent_is_what_requests_sends(servers, session):
    seen = []

    def handler(conn):
        stream = conn.makefile("rb")
        head = []
        line = stream.readline()
        while line not in (b"\r\n", b""):
            head.append(line.decode().strip())
            line = stream.readline()
        length = next((int(h.split(":")[1]) for h in head
                       if h.lower().startswith("content-length")), 0)
        seen.append((head[0], sorted(h.split(":")[0].lower() for h in head[1:]),
                     stream.read(length)))
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")

    server = servers(handler)
    session.post(server.url("/t"), headers={"Authorization": "Bearer x"}, json={"a": 1},
                 timeout=5)
    session.post(server.url("/f"), data={"grant_type": "refresh_token"}, timeout=5)
    assert seen[0][0] == "POST /t HTTP/1.1" and seen[0][2] == b'{"a": 1}'
    assert {"authorization", "content-type", "content-length", "host"} <= set(seen[0][1])
    assert seen[1][2] == b"grant_type=refresh_token"


def test_a_kept_alive_connection_serves_the_next_requests(lean, servers):
    server = servers(keep_alive())
    for _ in range(3):
        assert lean.get(server.url(), timeout=5).json() == {"ok": True}
    assert server.connections == 1


def test_a_server_that_closes_each_connection_gets_a_new_one_each_time(lean, servers):
    server = servers(one_answer(b"HTTP/1.0 200 OK\r\n\r\n{}"))
    for _ in range(3):
        assert lean.get(server.url(), timeout=5).json() == {}
    assert server.connections == 3


def test_a_kept_alive_connection_the_server_dropped_is_replaced(lean, servers):
    # Answers as HTTP/1.1 without Connection: close, then hangs up: the client keeps it.
    server = servers(one_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
    for _ in range(3):
        assert lean.get(server.url(), timeout=5).json() == {}
    assert server.connections == 3


def test_a_dropped_connection_is_sent_on_again_only_for_a_safe_method(lean, servers,
                                                                      monkeypatch):
    # The server closes the idle connection between the client's check and its send.
    server = servers(one_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
    monkeypatch.setattr("thingbridge.http.provider_adapter._dropped", lambda conn: False)
    lean.get(server.url(), timeout=5)
    assert lean.get(server.url(), timeout=5).json() == {}
    assert server.connections == 2  # the second GET went out twice
    with pytest.raises(requests.ConnectionError):
        lean.post(server.url(), json={}, timeout=5)  # a POST is not sent twice


def test_a_read_timeout_is_a_read_timeout(session, servers):
    hold = threading.Event()
    server = servers(lambda conn: hold.wait(10))
    with pytest.raises(requests.ReadTimeout):
        session.get(server.url(), timeout=0.2)
    hold.set()


def test_a_connect_timeout_is_a_connect_timeout(session):
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    filler = socket.create_connection(listener.getsockname())  # the backlog is now full
    try:
        with pytest.raises(requests.ConnectTimeout):
            session.get(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=(0.2, 5))
    finally:
        filler.close()
        listener.close()


def test_a_refused_connection_is_a_connection_error(session):
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    with pytest.raises(requests.ConnectionError) as caught:
        session.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert not isinstance(caught.value, requests.Timeout)


def test_a_connection_closed_mid_answer_is_an_error_and_the_next_request_works(session,
                                                                              servers):
    cut = servers(one_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"partial"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(cut.url(), timeout=5)
    closed = servers(one_answer(b""))  # hangs up before any answer
    with pytest.raises(requests.ConnectionError):
        session.get(closed.url(), timeout=5)
    assert session.get(servers(keep_alive()).url(), timeout=5).json() == {"ok": True}


def test_a_large_answer_is_read_whole(session, servers):
    body = b'{"x": "' + b"a" * (8 * 1024 * 1024) + b'"}'
    server = servers(one_answer(b"HTTP/1.0 200 OK\r\n\r\n" + body))
    assert len(session.get(server.url(), timeout=10).content) == len(body)


def test_gzip_and_chunked_answers_are_decoded(session, servers):
    packed = gzip.compress(b'{"z": 1}')
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                       for part in (packed[:5], packed[5:])) + b"0\r\n\r\n"
    server = servers(one_answer(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n" + chunked))
    assert session.get(server.url(), timeout=5).json() == {"z": 1}


def test_a_cookie_an_answer_sets_is_on_the_response(lean, servers):
    server = servers(one_answer(b"HTTP/1.0 200 OK\r\nSet-Cookie: s=alice; Path=/\r\n\r\n{}"))
    assert lean.get(server.url(), timeout=5).cookies.get("s") == "alice"


def test_streaming_goes_through_requests_own_adapter(lean, servers):
    server = servers(one_answer(b"HTTP/1.0 200 OK\r\n\r\nline1\nline2\n"))
    with lean.get(server.url(), timeout=5, stream=True) as resp:
        assert list(resp.iter_lines()) == [b"line1", b"line2"]


def test_a_coding_it_cannot_decode_goes_through_requests_own_adapter(lean, servers,
                                                                    monkeypatch):
    """requests offers br and zstd where their decoders are installed; this adapter decodes
    gzip and deflate only, so a request accepting another coding is not its to send."""
    server = servers(one_answer(b"HTTP/1.0 200 OK\r\n\r\n{}"))
    fallback = lean.get_adapter(server.url())._fallback
    stock_send, sent = fallback.send, []

    def send(request, **kwargs):
        sent.append(request.headers["Accept-Encoding"])
        return stock_send(request, **kwargs)

    monkeypatch.setattr(fallback, "send", send)
    for accepted in ("gzip, deflate", "gzip;q=1.0, identity", "gzip, deflate, br", "zstd"):
        assert lean.get(server.url(), headers={"Accept-Encoding": accepted},
                        timeout=5).json() == {}
    assert sent == ["gzip, deflate, br", "zstd"]


# --- TLS ----------------------------------------------------------------------------------------


def _certificate(name, key, issuer_name, issuer_key, ca: bool, sans=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A private CA, its bundle on disk, and server contexts for 127.0.0.1 and for another
    name."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test CA", ca_key, "Test CA", ca_key, ca=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def server_context(san, label):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(label, key, "Test CA", ca_key, ca=False, sans=[san])
        (folder / f"{label}.pem").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / f"{label}.pem")
        return context

    return {"ca": str(folder / "ca.pem"),
            "loopback": server_context(x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                       "loopback"),
            "other": server_context(x509.DNSName("other.example"), "other")}


def test_https_is_verified_against_the_bundle_given(lean, servers, tls):
    server = servers(keep_alive(), tls=tls["loopback"])
    for _ in range(2):
        assert lean.get(server.url(scheme="https"), verify=tls["ca"],
                        timeout=5).json() == {"ok": True}
    assert server.connections == 1  # TLS connections are kept alive too


def test_https_from_an_unknown_authority_is_refused(session, servers, tls):
    server = servers(keep_alive(), tls=tls["loopback"])
    with pytest.raises(requests.exceptions.SSLError):
        session.get(server.url(scheme="https"), timeout=5)  # verify=True: certifi's bundle


def test_https_for_another_host_name_is_refused(session, servers, tls):
    server = servers(keep_alive(), tls=tls["other"])
    with pytest.raises(requests.exceptions.SSLError):
        session.get(server.url(scheme="https"), verify=tls["ca"], timeout=5)


def test_https_to_a_server_that_does_not_speak_tls_is_an_ssl_error(session, servers):
    server = servers(lambda conn: conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n{}"))
    with pytest.raises(requests.exceptions.SSLError):
        session.get(server.url(scheme="https"), timeout=5)


# --- the provider sessions ----------------------------------------------------------------------


def test_provider_sessions_use_it_and_still_count_answers_by_code(servers):
    server = servers(keep_alive())
    session = registry._session("adapter-test")
    assert isinstance(session.get_adapter("https://provider.example/"), ProviderAdapter)
    before = metrics.PROVIDER_REQUESTS.labels("adapter-test", "200")._value.get()
    session.get(server.url(), timeout=5)
    assert metrics.PROVIDER_REQUESTS.labels("adapter-test", "200")._value.get() == before + 1
    hold = threading.Event()
    slow = servers(lambda conn: hold.wait(10))
    timeouts = metrics.PROVIDER_REQUESTS.labels("adapter-test", "timeout")._value.get()
    with pytest.raises(requests.Timeout):
        session.get(slow.url(), timeout=0.2)
    hold.set()
    assert metrics.PROVIDER_REQUESTS.labels("adapter-test", "timeout")._value.get() \
        == timeouts + 1


def test_with_a_proxy_in_the_environment_requests_own_adapter_is_kept(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setattr(registry._local, "sessions", {}, raising=False)
    session = registry._session("proxied")
    assert session.trust_env
    assert not isinstance(session.get_adapter("https://provider.example/"), ProviderAdapter)
