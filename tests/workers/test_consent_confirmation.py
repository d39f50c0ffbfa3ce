"""The instance option `confirm_consent`: the browser comes back with a one-time confirmation
code and the client gets the grant only when the app's backend posts that code under the same
subject, so a consent link forwarded to someone else attaches nobody's account. Real API, real
worker, the Netatmo simulator over HTTP."""

from __future__ import annotations

import pytest
from flows import CLIENTS, ORIGIN, approve, client_row, wait_status
from helpers import OWM_KEY

from thingbridge.db import utcnow
from thingbridge.models import OAuthState
from thingbridge.tasks import enqueue

NETATMO_CONFIRMING = {"connector_type_id": "netatmo", "configuration": {
    "client_id": "thingbridge-demo", "client_secret": "demo-secret",
    "origin_callback_uri": ORIGIN, "confirm_consent": True}}


@pytest.fixture
def confirming(api, netatmo_sim):
    resp = api.post("/api/v1/connectors/instances", json=NETATMO_CONFIRMING)
    assert resp.status_code == 201 and "warnings" not in resp.json
    return api


def _consented(api) -> dict:
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    assert created.status_code == 303
    return approve(api, created.headers["Location"])


def test_the_grant_waits_for_the_apps_confirmation(confirming, start_worker):
    start_worker()
    landed = _consented(confirming)
    client_id, code = landed["client_id"], landed["confirmation"]
    assert landed["status"] == "STARTING" and len(code) >= 43
    assert client_row(client_id).tokens is None  # nothing is polled on the browser's word

    path = f"{CLIENTS}/{client_id}/confirm"
    assert confirming.as_subject("bob").post(path, json={"confirmation": code}).status_code == 404
    wrong = confirming.post(path, json={"confirmation": code[:-1] + "x"})
    assert wrong.status_code == 400 and wrong.json["error"] == "INVALID_CONFIRMATION"
    assert confirming.post(path, json={}).status_code == 400

    confirmed = confirming.post(path, json={"confirmation": code})
    assert confirmed.status_code == 200, confirmed.json
    assert confirmed.json["status"] == "STARTING"
    assert wait_status(client_id, "STARTED").tokens["access_token"]
    again = confirming.post(path, json={"confirmation": code})
    assert again.status_code == 400 and again.json["error"] == "INVALID_CONFIRMATION"


def test_a_forwarded_consent_link_attaches_nobody(confirming, start_worker):
    """Mallory's client, consented in someone else's browser: that browser brings the code to
    the app under its own user's subject, where Mallory's client does not exist."""
    start_worker()
    mallory = confirming.as_subject("mallory")
    created = mallory.post(CLIENTS, json={"connector_type_id": "netatmo"})
    landed = approve(confirming, created.headers["Location"], login="victim@example.com")
    victims_backend = confirming.as_subject("victim")
    resp = victims_backend.post(f"{CLIENTS}/{landed['client_id']}/confirm",
                                json={"confirmation": landed["confirmation"]})
    assert resp.status_code == 404
    assert client_row(landed["client_id"]).tokens is None

    OAuthState.update(expires_at=utcnow()).execute()  # nobody confirms in time
    enqueue("thingbridge.expire_consents")
    client = wait_status(landed["client_id"], "ERROR")
    assert client.status_reason == "consent not completed" and client.tokens is None
    assert not OAuthState.select().exists()


def test_confirm_consent_is_checked_and_only_for_oauth_connectors(api, netatmo_sim, owm_sim):
    bad = {**NETATMO_CONFIRMING, "configuration": {**NETATMO_CONFIRMING["configuration"],
                                                   "confirm_consent": "maybe"}}
    resp = api.post("/api/v1/connectors/instances", json=bad)
    assert resp.status_code == 400 and "confirm_consent" in resp.json["description"]
    owm = api.post("/api/v1/connectors/instances", json={
        "connector_type_id": "openweathermap",
        "configuration": {"app_key": OWM_KEY, "confirm_consent": True}})
    assert owm.status_code == 201
    assert owm.json["warnings"] == [
        "configuration.confirm_consent: unknown openweathermap instance setting, ignored"]
