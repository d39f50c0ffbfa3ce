"""Flows through the real API that several test modules share: connecting an OpenWeatherMap
or Netatmo client (with the simulator's consent page over plain HTTP), reading a client's row,
making it due again."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import requests
from helpers import OWM_KEY, wait_until

from thingbridge.db import utcnow
from thingbridge.models import ConnectorClient

CLIENTS = "/api/v1/connectors/clients"
ORIGIN = "http://localhost:3000/connected"


def sim_stats(simulator: str) -> dict:
    """A provider simulator's counters (``GET /_sim/stats``)."""
    return requests.get(f"{simulator}/_sim/stats", timeout=5).json()


def owm_instance(api) -> None:
    if not api.get("/api/v1/connectors/instances").json:
        assert api.post("/api/v1/connectors/instances", json={
            "connector_type_id": "openweathermap",
            "configuration": {"app_key": OWM_KEY}}).status_code == 201


def owm_client(api, city="Berlin") -> str:
    owm_instance(api)
    resp = api.post(CLIENTS, json={"connector_type_id": "openweathermap",
                                   "configuration": {"city": city}})
    assert resp.status_code == 201, resp.json
    return resp.json["client_id"]


def client_row(client_id) -> ConnectorClient:
    return ConnectorClient.get_by_id(client_id)


def wait_status(client_id, status, timeout=30):
    return wait_until(lambda: client_row(client_id).status == status and client_row(client_id),
                      timeout=timeout, message=f"client {status}")


def repoll(client_id):
    """Make the client due again and run the dispatcher (beat's task) to enqueue it."""
    from thingbridge_workers.dispatcher import dispatch

    ConnectorClient.update(next_poll_at=utcnow()).where(ConnectorClient.id == client_id).execute()
    assert dispatch() >= 1


def poll_due(client_id) -> str:
    """Make the client due and poll it in this process, as a worker would; the outcome."""
    from thingbridge_workers.polling import poll

    ConnectorClient.update(next_poll_at=utcnow()).where(ConnectorClient.id == client_id).execute()
    return poll(client_id)


def netatmo_instance(api) -> None:
    if not api.get("/api/v1/connectors/instances").json:
        assert api.post("/api/v1/connectors/instances", json={
            "connector_type_id": "netatmo", "configuration": {
                "client_id": "thingbridge-demo", "client_secret": "demo-secret",
                "origin_callback_uri": ORIGIN}}).status_code == 201


def consent(api, decision="accept", login="") -> dict:
    """Create the client, accept/deny on the simulator's page, follow back to our callback;
    returns the query the browser would land with on origin_callback_uri."""
    netatmo_instance(api)
    created = api.post("/api/v1/connectors/clients", json={"connector_type_id": "netatmo"})
    assert created.status_code == 303
    return approve(api, created.headers["Location"], decision, login)


def reauthorize(api, client_id, decision="accept", login="") -> dict:
    """POST .../reauthorize, then the consent as in ``consent``."""
    resp = api.post(f"/api/v1/connectors/clients/{client_id}/reauthorize")
    assert resp.status_code == 303, resp.json
    assert resp.json == {"client_id": client_id, "href": resp.headers["Location"]}
    return approve(api, resp.headers["Location"], decision, login)


def approve(api, consent_url, decision="accept", login="") -> dict:
    """The end user on the simulator's consent page (signed in as ``login``, the same devices
    each time; a new account when empty), then the browser back through our callback."""
    landed = api.http.get(decided(consent_url, decision, login))
    assert landed.status_code == 302
    target = urlsplit(landed.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == ORIGIN
    return {k: v[0] for k, v in parse_qs(target.query).items()}


def decided(consent_url, decision="accept", login="") -> str:
    """The end user's decision on the simulator's consent page: the path and query of our
    callback the provider sends the browser back to."""
    page = requests.get(consent_url, timeout=5)
    assert page.status_code == 200 and 'id="accept"' in page.text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    back = requests.post(urlsplit(consent_url)._replace(query="").geturl(),
                         data={**fields, "decision": decision, "login": login},
                         allow_redirects=False, timeout=5)
    assert back.status_code == 302
    callback = urlsplit(back.headers["Location"])
    return f"{callback.path}?{callback.query}"
