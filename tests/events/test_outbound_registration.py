"""Registering a webhook or action callback URL that points inside the operator's network is
refused with 400 in the standard error body; the operator's allow-list opens exceptions."""

from __future__ import annotations

import pytest

from thingbridge.http import addresses

HOOKS = "/api/v1/webhooks"
CALLBACK = "/api/v1/actions/callback/register"
INTERNAL = [
    "https://127.0.0.1:6379/", "https://10.0.0.5/", "https://169.254.169.254/",
    "https://[::1]/", "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/", "https://2130706433/",
    "https://0x7f000001/", "https://017700000001/", "https://127.1/", "https://localhost/",
    "https://redis.internal/", "https://100.64.0.1/", "https://[fd00::1]/",
]


@pytest.fixture
def closed_policy(flask_app, monkeypatch):
    """No exceptions (production's default), and an internal DNS name that resolves."""
    monkeypatch.setitem(flask_app.config, "OUTBOUND_ALLOW", "")
    real = addresses.resolver
    table = {"redis.internal": ["10.1.2.3"], "hooks.example": ["93.184.216.34"],
             "split.example": ["10.1.2.3", "93.184.216.34"]}
    monkeypatch.setattr(addresses, "resolver",
                        lambda host, port: table[host] if host in table else real(host, port))


def assert_refused(resp, code, problem="public address"):
    assert resp.status_code == 400, resp.json
    assert resp.json["status"] == 400 and resp.json["error"] == code
    assert problem in resp.json["description"]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_urls_are_refused_on_every_registration(api, closed_policy, url):
    assert_refused(api.post(HOOKS, json={"url": url}), "INVALID_WEBHOOK_URL")
    assert_refused(api.post(CALLBACK, json={"callbackUrl": url}), "INVALID_CALLBACK_URL")


def test_changing_a_webhook_url_is_checked_the_same_way(api, closed_policy):
    hook = api.post(HOOKS, json={"url": "https://hooks.example/in"}).json
    assert_refused(api.patch(f"{HOOKS}/{hook['id']}", json={"url": "https://[::1]:8080/"}),
                   "INVALID_WEBHOOK_URL")
    assert api.get(f"{HOOKS}/{hook['id']}").json["url"] == "https://hooks.example/in"


def test_public_names_and_names_with_one_public_address_are_accepted(api, closed_policy):
    for url in ("https://hooks.example/in", "https://split.example/in",
                "https://not-resolvable-yet.example/in"):  # every send checks again
        assert api.post(HOOKS, json={"url": url}).status_code == 201, url
        assert api.post(CALLBACK, json={"callbackUrl": url}).status_code == 200, url


def test_the_allow_list_opens_a_range(api, closed_policy, flask_app, monkeypatch):
    monkeypatch.setitem(flask_app.config, "OUTBOUND_ALLOW", "10.0.0.0/8")
    assert api.post(HOOKS, json={"url": "https://redis.internal/"}).status_code == 201
    assert api.post(HOOKS, json={"url": "http://10.0.0.5/"}).status_code == 201
    assert_refused(api.post(HOOKS, json={"url": "https://127.0.0.1/"}), "INVALID_WEBHOOK_URL")


@pytest.mark.parametrize("url", ["https://example.com/\r\nX-Injected: 1",
                                 "https://example.com/a\n"])
def test_urls_with_line_breaks_are_refused_on_every_registration(api, url):
    """urlsplit drops line breaks silently; the URL stored and sent would keep them."""
    assert_refused(api.post(HOOKS, json={"url": url}), "INVALID_WEBHOOK_URL",
                   "control characters")
    assert_refused(api.post(CALLBACK, json={"callbackUrl": url}), "INVALID_CALLBACK_URL",
                   "control characters")


def test_a_name_whose_server_never_answers_is_taken_as_not_resolving_yet(api, closed_policy,
                                                                          hanging_dns):
    # An app's name server could otherwise hold an API worker for as long as the system
    # resolver waits (half a minute); every send looks the name up again and checks it.
    resp = api.post(HOOKS, json={"url": "https://hooks.hang/in"})
    assert resp.status_code == 201, resp.json
    resp = api.post(CALLBACK, json={"callbackUrl": "http://hooks.hang/in"})
    assert resp.status_code == 400 and resp.json["error"] == "INVALID_CALLBACK_URL"
    assert "must use https" in resp.json["description"]
    assert not hanging_dns.is_set()
