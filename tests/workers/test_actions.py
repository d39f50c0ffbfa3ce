"""Action routing end to end: API -> Redis -> real worker -> signed HTTP to a real receiver."""

import json
import socket

import pytest
from helpers import LAMP, Receiver, wait_until

from thingbridge.actions import service, signing
from thingbridge.db import utcnow
from thingbridge.localserver import LocalServer
from thingbridge.models import ActionRequest

THINGS = "/api/v1/things"


def _register(api, url) -> str:
    resp = api.post("/api/v1/actions/callback/register", json={"CallbackUrl": url})
    assert resp.status_code == 200, resp.json
    return resp.json["signingKey"]


def _trigger(api, thing_id, params=None):
    return api.post(f"{THINGS}/{thing_id}/components/switch/actions/setOn",
                    json=params if params is not None else {"on": "true"})


def _status(request_id, wanted, timeout=30):
    return wait_until(lambda: ActionRequest.get_by_id(request_id).status in wanted
                      and ActionRequest.get_by_id(request_id), timeout=timeout,
                      message=f"action request {wanted}")


@pytest.fixture
def lamp(api, receiver):
    key = _register(api, receiver.url)
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    return api, thing_id, key


def test_204_completes_and_the_delivery_is_signed(lamp, receiver, start_worker):
    api, thing_id, key = lamp
    start_worker()
    resp = _trigger(api, thing_id)
    assert resp.status_code == 201
    assert resp.json["status"] == "PENDING" and resp.json["deadline"]
    request = _status(resp.json["id"], {"COMPLETED"})
    assert request.error is None
    [delivery] = receiver.requests
    body = json.loads(delivery["body"])
    assert body == {"id": resp.json["id"], "thingId": thing_id, "componentId": "switch",
                    "actionId": "setOn", "status": "PENDING", "parameters": {"on": "true"}}
    headers = delivery["headers"]
    assert signing.verify(key, "POST", receiver.url, headers["Date"], delivery["body"],
                          headers[signing.SIGNATURE_HEADER]) is None
    got = api.get(f"/api/v1/actions/requests/{resp.json['id']}")
    assert got.status_code == 200 and got.json["status"] == "COMPLETED"


def test_202_stays_pending_until_the_app_finishes_it(lamp, receiver, start_worker):
    api, thing_id, _ = lamp
    receiver.default = (202, {"status": "PENDING", "error": ""})
    start_worker()
    request_id = _trigger(api, thing_id).json["id"]
    wait_until(lambda: receiver.requests, message="delivery")
    pending = wait_until(lambda: (r := ActionRequest.get_by_id(request_id)).lease_token is None
                         and r, message="the attempt released the request")
    assert pending.status == "PENDING" and pending.next_attempt_at is None  # the app's turn
    assert not service.take_delivery(request_id, None)  # a stale task copy sends nothing
    done = api.put(f"/api/v1/actions/requests/{request_id}", json={"status": "COMPLETED"})
    assert done.status_code == 200 and done.json["status"] == "COMPLETED"
    again = api.put(f"/api/v1/actions/requests/{request_id}",
                    json={"status": "FAILED", "error": "late"})
    assert again.status_code == 409
    assert ActionRequest.get_by_id(request_id).status == "COMPLETED"


@pytest.mark.parametrize("code", [400, 403])
def test_refusal_fails_with_the_reason(lamp, receiver, start_worker, code):
    api, thing_id, _ = lamp
    receiver.default = (code, {"error": "lamp is unplugged"})
    start_worker()
    request = _status(_trigger(api, thing_id).json["id"], {"FAILED"})
    assert "lamp is unplugged" in request.error and str(code) in request.error
    assert len(receiver.requests) == 1  # a refusal is not retried


def test_5xx_is_retried_then_completed_once(lamp, receiver, start_worker):
    api, thing_id, _ = lamp
    receiver.script = [(503, None), (500, None)]
    start_worker()
    request = _status(_trigger(api, thing_id).json["id"], {"COMPLETED"})
    assert [r["answered"] for r in receiver.requests] == [503, 500, 204]
    assert request.attempts == 2


def test_receiver_down_then_up_is_delivered_once(api, start_worker):
    with socket.socket() as probe:  # a free port with nobody listening yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recv = Receiver()
    _register(api, f"http://127.0.0.1:{port}/callback")
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    start_worker()
    request_id = _trigger(api, thing_id).json["id"]
    wait_until(lambda: ActionRequest.get_by_id(request_id).attempts >= 2, message="retries")
    server = LocalServer(recv, port=port).start()
    try:
        _status(request_id, {"COMPLETED"})
    finally:
        server.stop()
    assert len(recv.answered(204)) == 1 and len(recv.requests) == 1


def test_deadline_fails_with_timeout(lamp, receiver, start_worker, flask_app):
    """A callback that keeps failing is retried until the deadline, then the request is FAILED
    with "timeout". The deadline is moved, not waited for: worker start-up time is no factor."""
    api, thing_id, _ = lamp
    receiver.default = (503, None)
    start_worker()
    resp = _trigger(api, thing_id)
    request = ActionRequest.get_by_id(resp.json["id"])
    timeout = (request.deadline - request.created_at).total_seconds()
    assert abs(timeout - flask_app.config["ACTION_TIMEOUT"]) < 1
    wait_until(lambda: len(receiver.requests) >= 2, message="a retried delivery")
    ActionRequest.update(deadline=utcnow()).where(ActionRequest.id == request.id).execute()
    request = _status(request.id, {"FAILED"})
    assert request.error == "timeout"
    assert ActionRequest.get_by_id(request.id).attempts >= 2


def test_no_callback_url_is_424_and_leaves_nothing_pending(api):
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    resp = _trigger(api, thing_id)
    assert resp.status_code == 424 and resp.json["error"] == "NO_CALLBACK_URL"
    assert not ActionRequest.select().exists()


@pytest.mark.parametrize("params, needle", [
    ({}, "missing required parameter 'on'"),
    ({"on": "maybe"}, "not a BOOLEAN"),
    ({"on": "true", "colour": "red"}, "unknown parameter 'colour'"),
    ({"on": {"nested": 1}}, "must be a string"),
])
def test_bad_parameters_are_400(lamp, params, needle):
    api, thing_id, _ = lamp
    resp = _trigger(api, thing_id, params)
    assert resp.status_code == 400 and needle in resp.json["description"]
    assert not ActionRequest.select().exists()


def test_isolation_and_unknown_action(lamp, make_app):
    api, thing_id, _ = lamp
    assert api.post(f"{THINGS}/{thing_id}/components/switch/actions/explode",
                    json={}).status_code == 404
    request_id = _trigger(api, thing_id).json["id"]
    other_app = make_app("app-b")
    for caller in (api.as_subject("bob"), other_app):
        assert _trigger(caller, thing_id).status_code == 404
        assert caller.get(f"/api/v1/actions/requests/{request_id}").status_code == 404
    assert other_app.put(f"/api/v1/actions/requests/{request_id}",
                         json={"status": "CANCELED"}).status_code == 404


@pytest.mark.parametrize("url", ["http://example.com/cb", "ftp://localhost/cb", "not a url",
                                 "https://user:pw@example.com/cb"])
def test_callback_url_policy(api, url):
    resp = api.post("/api/v1/actions/callback/register", json={"callbackUrl": url})
    assert resp.status_code == 400 and resp.json["error"] == "INVALID_CALLBACK_URL"


def test_signing_key_is_shown_once_and_rotatable(api):
    first = api.post("/api/v1/actions/callback/register",
                     json={"CallbackUrl": "https://example.com/a"}).json
    second = api.post("/api/v1/actions/callback/register",
                      json={"callbackUrl": "https://example.com/b"}).json
    assert first["signingKey"] and "signingKey" not in second
    rotated = api.post("/api/v1/actions/callback/register",
                       json={"callbackUrl": "https://example.com/b",
                             "rotateSigningKey": True}).json
    assert rotated["signingKey"] and rotated["signingKey"] != first["signingKey"]
