"""Stored secrets the configured keys cannot decrypt (a key removed before rotate-secrets):
/health says so, an API request that meets one answers 503 SECRET_UNREADABLE, and a poll
records the reason on its client instead of failing silently at every lease."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from flows import owm_client, poll_due
from peewee import Value

from thingbridge import crypto
from thingbridge.api import health
from thingbridge.connectors import lifecycle
from thingbridge.db import utcnow
from thingbridge.models import App, ConnectorClient, WebhookEndpoint


@pytest.fixture
def key_lost(monkeypatch):
    """Call it to run on a key list that lacks the key everything was written with."""
    monkeypatch.setattr(crypto, "_keyring", crypto.keyring())  # restored after the test
    return lambda: crypto.configure(Fernet.generate_key().decode())


def test_health_names_the_unreadable_secrets(http, api, key_lost, monkeypatch, flask_app):
    # A key removed before rotate-secrets: the oldest webhook is under it, the newest is not.
    hooks = [api.post("/api/v1/webhooks", json={"url": f"https://example.com/{n}"}).json["id"]
             for n in range(2)]
    gone = Fernet(Fernet.generate_key()).encrypt(b'["whsec_gone"]').decode()
    WebhookEndpoint.update({WebhookEndpoint.secrets: Value(gone, converter=False)}).where(
        WebhookEndpoint.id == hooks[0]).execute()
    # This test's answers, not an earlier test's for the same keys, nor kept for a later one.
    monkeypatch.setattr(health, "_secrets_checked", {"keys": None, "until": 0.0, "failure": None})
    monkeypatch.setitem(flask_app.config, "METRICS_TOKEN", "ops-s3cret")
    operator = {"Authorization": "Bearer ops-s3cret"}
    anonymous, insider = http.get("/health"), http.get("/health", headers=operator)
    assert anonymous.status_code == insider.status_code == 503
    assert anonymous.json["checks"]["secrets"] == {"status": "error"}
    assert anonymous.json["checks"]["database"] == {"status": "ok"}
    detail = insider.json["checks"]["secrets"]["detail"]
    assert detail == ("stored secrets cannot be decrypted with THINGBRIDGE_SECRET_KEYS "
                      "(webhook_endpoint.secrets): was a key removed before `thingbridge "
                      "rotate-secrets`?")
    # The whole key list replaced: every column with a value says so.
    key_lost()
    detail = http.get("/health", headers=operator).json["checks"]["secrets"]["detail"]
    assert "(app.signing_key, " not in detail  # no app has a signing key
    assert "webhook_endpoint.secrets" in detail


def test_a_request_that_meets_one_answers_503_secret_unreadable(api, key_lost):
    register = {"CallbackUrl": "https://example.com/actions"}
    api.post("/api/v1/actions/callback/register", json=register)
    hook = api.post("/api/v1/webhooks", json={"url": "https://example.com/hook"}).json
    key_lost()
    resp = api.post("/api/v1/actions/callback/register", json=register)  # reads the key
    assert resp.status_code == 503
    assert resp.json["error"] == "SECRET_UNREADABLE"
    assert "cannot be decrypted with the platform's keys" in resp.json["description"]
    # Reads that need no secret still show the endpoint (where its last error is said).
    assert [e["id"] for e in api.get("/api/v1/webhooks").json] == [hook["id"]]
    for resp in (api.get(f"/api/v1/webhooks/{hook['id']}"),
                 api.patch(f"/api/v1/webhooks/{hook['id']}", json={"description": "d"})):
        assert resp.status_code == 200 and resp.json["id"] == hook["id"]


def test_a_rotation_replaces_what_no_key_reads(api, key_lost):
    """The webhook's secret and the action signing key: the app gets new ones (nothing to
    sign alongside them) and its deliveries can go on without the lost key."""
    register = {"CallbackUrl": "https://example.com/actions", "rotateSigningKey": True}
    api.post("/api/v1/actions/callback/register", json=register)
    hook = api.post("/api/v1/webhooks", json={"url": "https://example.com/hook"}).json
    key_lost()
    rotated = api.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.json
    assert rotated.json["previous_valid_until"] is None
    stored = WebhookEndpoint.get_by_id(hook["id"]).secrets
    assert stored == [{"secret": rotated.json["secret"], "expires_at": None}]
    key = api.post("/api/v1/actions/callback/register", json=register).json["signingKey"]
    assert App.get_by_id(api.model.id).signing_key == key


def test_a_poll_that_meets_one_records_why_and_backs_off(api, owm_sim, key_lost):
    client_id = owm_client(api)
    assert poll_due(client_id) == "ok"
    key_lost()
    assert poll_due(client_id) == "exception"
    row = ConnectorClient.select(
        ConnectorClient.status, ConnectorClient.status_reason, ConnectorClient.failure_count,
        ConnectorClient.leased_until, ConnectorClient.next_poll_at).where(
        ConnectorClient.id == client_id).get()
    assert (row.status, row.status_reason, row.failure_count, row.leased_until) == (
        "STARTED", lifecycle.UNREADABLE_SECRETS, 1, None)
    assert row.next_poll_at > utcnow()  # backed off, not claimed again at once
