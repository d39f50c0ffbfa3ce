"""The provider's callback cannot be replayed: a used, expired, superseded or unknown state
changes no client and redirects nowhere; PKCE binds the code to the consent that asked for it.
Real API, real worker, the Netatmo simulator over HTTP."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flows import client_row, netatmo_instance, sim_stats, wait_status

from thingbridge.db import utcnow
from thingbridge.models import OAuthState

CLIENTS = "/api/v1/connectors/clients"


def _provider_redirect(consent_url: str, decision="accept") -> str:
    """The end user on the consent page; returns our callback's path and query, which the
    browser is sent to (and keeps in its history)."""
    page = requests.get(consent_url, timeout=5)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    back = requests.post(urlsplit(consent_url)._replace(query="").geturl(),
                         data={**fields, "decision": decision}, allow_redirects=False,
                         timeout=5)
    callback = urlsplit(back.headers["Location"])
    return f"{callback.path}?{callback.query}"


def _refused(resp) -> None:
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert resp.content_type.startswith("text/html")
    page = resp.get_data(as_text=True)
    assert "already used" in page and "start again" in page


def _consented_client(api) -> tuple[str, str]:
    netatmo_instance(api)
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    callback = _provider_redirect(created.headers["Location"])
    assert api.http.get(callback).status_code == 302
    return created.json["client_id"], callback


def test_a_replayed_callback_leaves_a_started_client_started(api, netatmo_sim, start_worker):
    start_worker()
    client_id, callback = _consented_client(api)
    before = wait_status(client_id, "STARTED")

    for _ in range(2):  # reload, back button
        _refused(api.http.get(callback))
    after = client_row(client_id)
    assert (after.status, after.tokens, after.status_since) == (
        "STARTED", before.tokens, before.status_since)
    assert not OAuthState.select().exists()  # the used state is gone, not kept as a redirect


def test_an_expired_reauthorization_changes_nothing(api, netatmo_sim, start_worker):
    start_worker()
    client_id, _ = _consented_client(api)
    before = wait_status(client_id, "STARTED")
    location = api.post(f"{CLIENTS}/{client_id}/reauthorize").headers["Location"]
    callback = _provider_redirect(location)
    OAuthState.update(expires_at=utcnow()).execute()

    _refused(api.http.get(callback))
    after = client_row(client_id)
    assert (after.status, after.tokens) == ("STARTED", before.tokens)


def test_a_newer_consent_link_supersedes_the_older_one(api, netatmo_sim):
    netatmo_instance(api)
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    client_id = created.json["client_id"]
    older = _provider_redirect(created.headers["Location"])
    newer = api.post(f"{CLIENTS}/{client_id}/reauthorize")
    assert newer.status_code == 303
    assert parse_qs(urlsplit(newer.headers["Location"]).query)["state"] != parse_qs(
        urlsplit(created.headers["Location"]).query)["state"]

    _refused(api.http.get(older))
    assert client_row(client_id).tokens is None
    landed = api.http.get(_provider_redirect(newer.headers["Location"]))
    assert landed.status_code == 302 and "status=STARTING" in landed.headers["Location"]


@pytest.fixture
def netatmo_pkce(flask_app, monkeypatch):
    """PKCE on for Netatmo, as THINGBRIDGE_NETATMO_PKCE=1 sets it."""
    monkeypatch.setitem(flask_app.config, "NETATMO_PKCE", "1")


def test_pkce_s256_is_sent_and_verified_by_the_provider(api, netatmo_sim, netatmo_pkce,
                                                        start_worker):
    start_worker()
    netatmo_instance(api)
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    query = parse_qs(urlsplit(created.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert OAuthState.get().code_verifier  # kept (encrypted) for the exchange

    landed = api.http.get(_provider_redirect(created.headers["Location"]))
    assert "status=STARTING" in landed.headers["Location"]
    wait_status(created.json["client_id"], "STARTED")
    assert sim_stats(netatmo_sim)["pkce_verified"] == 1


def test_pkce_is_off_for_netatmo_by_default(api, netatmo_sim):
    netatmo_instance(api)
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    assert "code_challenge" not in parse_qs(urlsplit(created.headers["Location"]).query)
