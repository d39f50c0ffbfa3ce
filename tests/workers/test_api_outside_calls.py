"""The API's requests that wait on an outside server (an instance's check, a consent's code
exchange, a connector action, a URL registration's name lookup) hold at most
THINGBRIDGE_API_OUTSIDE_CALLS of the server's workers: a provider that hangs leaves the rest
answering, and a request that finds no slot is a 503 that did nothing, so the same request
succeeds once a slot is free."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import requests
from broker_helpers import free_port
from flows import CLIENTS, decided, netatmo_instance, poll_due, sim_stats
from helpers import OWM_KEY, wait_until
from worker_fixtures import listening

from thingbridge.actions import signing
from thingbridge.api import outside_calls
from thingbridge.models import ActionRequest, ConnectorClient, ConnectorInstance, Thing

OWM = {"connector_type_id": "openweathermap", "configuration": {"app_key": OWM_KEY}}


def test_a_hanging_provider_holds_one_worker_and_the_api_answers_the_rest(
        run, make_app, servers):
    """`thingbridge api` with its 2 sync workers: one instance check waits on a provider that
    does not answer; a second app's check is a 503 that created nothing, and every read is
    answered while the first still waits. Without the limit both workers wait and nothing is
    answered until the provider lets go."""
    released = threading.Event()

    def hanging(conn):
        conn.recv(65536)
        released.wait(120)  # then closed: the waiting check fails as a connection reset

    provider = servers(hanging)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run("api", "--port", str(port), "--workers", "2", env={
        "THINGBRIDGE_OPENWEATHERMAP_BASE_URL": f"http://127.0.0.1:{provider.port}",
        "THINGBRIDGE_HTTP_TIMEOUT": "25"})  # the check waits until released, inside gunicorn's 30
    listening(base)
    first, second = make_app("first"), make_app("second")
    answers = {}

    def create(api, key):
        answers[key] = requests.post(f"{base}/api/v1/connectors/instances", json=OWM, timeout=60,
                                     headers={"Authorization": f"Bearer {api.token}"})

    waiting = threading.Thread(target=create, args=(first, "first"))
    waiting.start()
    try:
        wait_until(lambda: provider.connections == 1, message="the first check at the provider")
        create(second, "second")
        busy = answers["second"]
        assert busy.status_code == 503, busy.text
        assert busy.json()["error"] == "OUTSIDE_CALLS_BUSY"
        assert 3 <= int(busy.headers["Retry-After"]) <= 8
        for path in ("/api/v1/connectors/descriptions", "/health"):
            assert requests.get(base + path, timeout=20).status_code == 200
        assert waiting.is_alive() and provider.connections == 1  # still waiting, alone
    finally:
        released.set()
        waiting.join(60)
    assert answers["first"].status_code == 502
    assert answers["first"].json()["error"] == "PROVIDER_UNAVAILABLE"
    assert ConnectorInstance.select().count() == 0
    create(second, "again")  # the slot is free: this one reaches the provider
    assert answers["again"].status_code == 502 and provider.connections == 2


@pytest.fixture
def one_slot(flask_app, monkeypatch):
    """The API limited to one outside call at once; ``held()`` takes that slot, as a request
    waiting on a hanging provider would."""
    monkeypatch.setitem(flask_app.config, "API_OUTSIDE_CALLS", 1)

    @contextmanager
    def held():
        with flask_app.app_context(), outside_calls.outside_call():
            yield

    return held


def _connector_action(api):
    """A connected Netatmo room and a function that POSTs a signed connector action on it
    (``request_id``, the delivery's id)."""
    netatmo_instance(api)
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    api.http.get(decided(created.headers["Location"]))
    assert poll_due(created.json["client_id"]) == "ok"
    key = api.post("/api/v1/actions/callback/register",
                   json={"CallbackUrl": "https://app.example.com/cb"}).json["signingKey"]
    path = urlsplit(api.get("/api/v1/connectors/callbackurl").json["href"]).path
    room = Thing.get(Thing.display_type == "THERMOSTAT")

    def post(request_id="r1"):
        body = json.dumps({"id": request_id, "thingId": room.id, "componentId": "thermostat",
                           "actionId": "setRoomThermPoint",
                           "parameters": {"mode": "max"}}).encode()
        date = signing.http_date()
        return api.http.post(path, data=body, headers={
            "Content-Type": "application/json", "Date": date,
            signing.SIGNATURE_HEADER: signing.signature(key, "POST", f"http://localhost{path}",
                                                        date, body)})

    return post


def test_a_busy_connector_action_records_nothing_and_its_retry_is_performed(
        api, netatmo_sim, one_slot):
    post = _connector_action(api)
    with one_slot():
        busy = post()
    assert busy.status_code == 503 and busy.json["error"] == "OUTSIDE_CALLS_BUSY"
    assert 3 <= int(busy.headers["Retry-After"]) <= 8
    assert ActionRequest.select().count() == 0  # nothing to answer "still being performed"
    assert post().status_code == 204
    with one_slot():  # a replay waits on no provider: it answers what the first call got
        assert post().status_code == 204
    calls = sim_stats(netatmo_sim)["setroomthermpoint_calls"]
    assert [call["mode"] for call in calls] == ["max"]


def test_a_connector_action_the_provider_refuses_for_now_says_when_to_try_again(
        api, netatmo_sim):
    """Netatmo's usage limit with a Retry-After: the 502 carries it to the connector service,
    which would otherwise try again at once against a limit that holds for minutes."""
    post = _connector_action(api)
    requests.post(f"{netatmo_sim}/_sim/control", timeout=5,
                  json={"mode": "usage_limit_429", "retry_after": 120})
    refused = post()
    assert refused.status_code == 502 and refused.json["error"] == "PROVIDER_UNAVAILABLE"
    assert refused.headers["Retry-After"] == "120"


def test_a_busy_consent_callback_keeps_its_state_and_a_reload_finishes_it(
        api, netatmo_sim, one_slot):
    netatmo_instance(api)
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    callback = decided(created.headers["Location"])
    with one_slot():
        busy = api.http.get(callback)
    assert busy.status_code == 503 and busy.content_type.startswith("text/html")
    wait = busy.headers["Retry-After"]
    assert 3 <= int(wait) <= 8 and "tries again" in busy.text
    assert f'http-equiv="refresh" content="{wait}"' in busy.text
    assert ConnectorClient.get_by_id(created.json["client_id"]).tokens is None
    finished = api.http.get(callback)  # the browser's reload
    assert finished.status_code == 302 and "status=STARTING" in finished.headers["Location"]
    assert ConnectorClient.get_by_id(created.json["client_id"]).tokens


def test_a_url_registration_looks_its_name_up_under_a_slot(api, one_slot):
    """A registration waits up to 2 s for its URL's name: a name server that hangs would hold
    a worker per registration as a hanging provider does."""
    hook, callback = {"url": "https://hooks.example.com/in"}, {
        "CallbackUrl": "https://app.example.com/cb"}
    with one_slot():
        answers = [api.post("/api/v1/webhooks", json=hook),
                   api.post("/api/v1/actions/callback/register", json=callback)]
    for busy in answers:
        assert busy.status_code == 503 and busy.json["error"] == "OUTSIDE_CALLS_BUSY"
    assert api.get("/api/v1/webhooks").json == []
    assert api.post("/api/v1/webhooks", json=hook).status_code == 201
    assert api.post("/api/v1/actions/callback/register", json=callback).status_code == 200
