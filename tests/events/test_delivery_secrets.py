"""Deliveries that meet a stored secret no configured key decrypts (a key removed before
`thingbridge rotate-secrets`), with a real worker: the webhook endpoint and the action request
say why, are retried with backoff, and go out once the key is back or the app has rotated
the secret; the app's other endpoints are not held up."""

from __future__ import annotations

import re

import pytest
from cryptography.fernet import Fernet
from flows import client_row, consent, wait_status
from helpers import LAMP, wait_until
from peewee import Value
from test_webhook_delivery import HookReceiver, register

from thingbridge import crypto
from thingbridge.localserver import LocalServer
from thingbridge.models import (
    ActionRequest,
    App,
    ConnectorClient,
    Thing,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from thingbridge.outbox import webhook_signing

HOOKS = "/api/v1/webhooks"
THINGS = "/api/v1/things"
UNREADABLE_SECRET = crypto.unreadable("this endpoint's signing secret")
UNREADABLE_KEY = crypto.unreadable("the action signing key of the thing's app")
UNREADABLE_CREDENTIALS = crypto.unreadable("the stored credentials of the thing's connector")


@pytest.fixture
def receivers():
    """Two receivers, each on its own port, up."""
    started = []
    for _ in range(2):
        recv = HookReceiver()
        recv.server = LocalServer(recv).start()
        recv.url = f"{recv.server.url}/hook"
        started.append(recv)
    yield started
    for recv in started:
        recv.server.stop()


def sealed_by_a_lost_key(value) -> Value:
    """``value`` encrypted under a key THINGBRIDGE_SECRET_KEYS does not hold, written as is."""
    token = Fernet(Fernet.generate_key()).encrypt(repr(value).encode()).decode()
    return Value(token, converter=False)


def console_page(api, path: str) -> str:
    form = api.http.get("/console/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    api.http.post("/console/login", data={"client_id": api.client_id,
                                          "client_secret": api.secret, "csrf_token": csrf})
    page = api.http.get(path)
    assert page.status_code == 200
    return page.get_data(as_text=True)


def retried_twice(request_id: str) -> ActionRequest:
    """The action request once a second attempt is recorded."""
    def retried():
        row = ActionRequest.get_by_id(request_id)
        return row.attempts >= 2 and row

    return wait_until(retried, message="two attempts recorded")


def test_a_webhook_whose_secret_no_key_reads_says_so_and_backs_off(api, receivers,
                                                                   start_worker):
    healthy, broken = receivers
    register(api, healthy.url)
    hook = register(api, broken.url)
    WebhookEndpoint.update({WebhookEndpoint.secrets: sealed_by_a_lost_key(["whsec_x"])}).where(
        WebhookEndpoint.id == hook["id"]).execute()
    start_worker(beat=True)
    for _ in range(2):
        api.post(THINGS, json=LAMP)
    # The other endpoint of the same app is fanned out and delivered as usual.
    wait_until(lambda: healthy.ids() == [1, 2], message="the healthy endpoint's deliveries")

    def said():
        shown = api.get(f"{HOOKS}/{hook['id']}")
        return shown.status_code == 200 and shown.json["last_error"] == UNREADABLE_SECRET \
            and shown.json

    shown = wait_until(said, message="the endpoint's last error")
    assert shown["last_error_at"] is not None
    listed = {e["id"]: e for e in api.get(HOOKS).json}
    assert listed[hook["id"]]["last_error"] == UNREADABLE_SECRET
    page = api.get(f"{HOOKS}/{hook['id']}/deliveries").json["deliveries"]
    first = next(d for d in page if d["event_id"] == 1)
    assert first["status"] == "PENDING" and first["last_error"] == UNREADABLE_SECRET
    assert {a["error"] for a in first["attempt_log"]} == {UNREADABLE_SECRET}
    # Backed off: the next attempt is due after the latest one, not at once.
    row = WebhookDelivery.get_by_id(first["id"])
    latest = (WebhookAttempt.select(WebhookAttempt.created_at)
              .where(WebhookAttempt.delivery == row.id)
              .order_by(WebhookAttempt.id.desc()).first())
    assert row.next_attempt_at > latest.created_at
    assert broken.received == []  # nothing went out unsigned
    for page in (console_page(api, "/console/webhooks"),
                 console_page(api, f"/console/webhooks/{hook['id']}")):
        assert "cannot be read with the configured THINGBRIDGE_SECRET_KEYS" in page
    # The app rotates the secret (the operator could put the key back instead): the backlog
    # goes out in order, signed with the new secret, and the endpoint's error is cleared.
    secret = api.post(f"{HOOKS}/{hook['id']}/rotate-secret").json["secret"]
    wait_until(lambda: broken.ids() == [1, 2], timeout=60, message="the backlog delivered")
    for got in broken.received:
        headers = got["headers"]
        assert webhook_signing.verify(secret, headers["Webhook-Id"],
                                      headers["Webhook-Timestamp"],
                                      headers["Webhook-Signature"], got["body"])
    wait_until(lambda: api.get(f"{HOOKS}/{hook['id']}").json["last_error"] is None,
               message="the error cleared")


def test_an_action_whose_signing_key_no_key_reads_says_so_and_backs_off(api, receivers,
                                                                       start_worker):
    callback = receivers[0]
    key = api.post("/api/v1/actions/callback/register",
                   json={"CallbackUrl": callback.url}).json["signingKey"]
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    request_id = api.post(f"{THINGS}/{thing_id}/components/switch/actions/setOn",
                          json={"on": "true"}).json["id"]
    App.update({App.signing_key: sealed_by_a_lost_key(key)}).where(
        App.id == api.model.id).execute()
    start_worker(beat=True)

    row = retried_twice(request_id)
    assert (row.status, row.error) == ("PENDING", UNREADABLE_KEY)
    assert row.next_attempt_at > row.updated_at  # backed off
    assert callback.received == []
    # The app still signs in and reads why (its row is read without the key).
    shown = api.get(f"/api/v1/actions/requests/{request_id}")
    assert shown.status_code == 200 and shown.json["error"] == UNREADABLE_KEY
    assert "cannot be read with the configured THINGBRIDGE_SECRET_KEYS" in console_page(
        api, "/console/actions")
    # Only what needs the key fails; a rotation, which never reads the old one, replaces it.
    register = {"CallbackUrl": callback.url}
    assert api.post("/api/v1/actions/callback/register", json=register).json["error"] == \
        "SECRET_UNREADABLE"
    new_key = api.post("/api/v1/actions/callback/register",
                       json={**register, "rotateSigningKey": True}).json["signingKey"]
    assert new_key != key
    wait_until(lambda: ActionRequest.get_by_id(request_id).status == "COMPLETED",
               timeout=60, message="delivered once the app has a key again")
    assert len(callback.received) == 1


def test_a_connector_action_whose_credentials_no_key_reads_says_so_and_backs_off(
        api, netatmo_sim, start_worker):
    start_worker()
    client_id = consent(api)["client_id"]
    tokens = wait_status(client_id, "STARTED").tokens
    ConnectorClient.update({ConnectorClient.tokens: sealed_by_a_lost_key(tokens)}).where(
        ConnectorClient.id == client_id).execute()
    room = Thing.get(Thing.display_type == "THERMOSTAT")
    request_id = api.post(
        f"{THINGS}/{room.id}/components/thermostat/actions/setRoomThermPoint",
        json={"mode": "max"}).json["id"]

    row = retried_twice(request_id)
    assert (row.status, row.error) == ("PENDING", UNREADABLE_CREDENTIALS)
    assert row.next_attempt_at > row.updated_at  # backed off
    ConnectorClient.update(tokens=tokens).where(ConnectorClient.id == client_id).execute()
    wait_until(lambda: ActionRequest.get_by_id(request_id).status == "COMPLETED",
               timeout=60, message="performed once the key is back")
    assert client_row(client_id).status == "STARTED"
