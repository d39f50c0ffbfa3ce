"""The HTTP session a worker thread shares between the end users it polls for one provider."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from thingbridge.connectors import registry


class _CookieSetter(BaseHTTPRequestHandler):
    """Answers every request with a session cookie and remembers the Cookie header it got."""

    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.seen.append(self.headers.get("Cookie"))
        body = b"{}"
        self.send_response(200)
        self.send_header("Set-Cookie", "provider_session=alice; Path=/")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def provider():
    _CookieSetter.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CookieSetter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_cookie_one_users_answer_sets_is_not_sent_with_the_next_users_request(provider):
    session = registry._session("cookie-test")
    alice = session.get(f"{provider}/alice", timeout=5)
    session.get(f"{provider}/bob", timeout=5)
    assert alice.cookies.get("provider_session") == "alice"  # the plugin still sees it
    assert _CookieSetter.seen == [None, None]
    assert len(session.cookies) == 0
