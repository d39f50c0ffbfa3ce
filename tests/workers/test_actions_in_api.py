"""The API's own first attempt at a connector thing's action (actions/delivery.py): the trigger
answers with what the provider did when an outside-call slot is free, and hands the request to
a worker, nothing lost, whenever it cannot finish the attempt itself."""

from __future__ import annotations

import datetime
import os
import signal
import threading

import pytest
import requests
from broker_helpers import free_port
from flows import client_row, sim_stats
from helpers import wait_until
from worker_fixtures import children, listening

from thingbridge.actions import delivery
from thingbridge.api import outside_calls
from thingbridge.connectors.lifecycle import REFRESH_SETTLE
from thingbridge.db import utcnow
from thingbridge.models import ActionRequest, ConnectorClient

ACTION = "components/thermostat/actions/setRoomThermPoint"


pytestmark = pytest.mark.usefixtures("api_attempts")


def _trigger(api, room, body):
    resp = api.post(f"/api/v1/things/{room.id}/{ACTION}", json=body)
    assert resp.status_code == 201, resp.json
    return resp.json


def _calls(netatmo_sim) -> list[dict]:
    return sim_stats(netatmo_sim)["setroomthermpoint_calls"]


def _control(netatmo_sim, **mode):
    requests.post(f"{netatmo_sim}/_sim/control", json=mode, timeout=5).raise_for_status()


def _ended(request_id: str, timeout: float = 30) -> ActionRequest:
    return wait_until(lambda: ActionRequest.get_by_id(request_id).status != "PENDING"
                      and ActionRequest.get_by_id(request_id), timeout=timeout,
                      message="action ended")


def test_the_answer_says_what_the_provider_did(api, room, netatmo_sim):
    done = _trigger(api, room, {"mode": "manual", "temp": "21.5"})
    assert (done["status"], done["error"]) == ("COMPLETED", None)
    assert [(c["mode"], c["temp"]) for c in _calls(netatmo_sim)] == [("manual", 21.5)]
    feed = [(e["type"], e["data"]["status"])
            for e in api.get("/api/v1/events?after=0").json["events"]
            if e["type"].startswith("action.")]
    assert feed == [("action.requested", "PENDING"), ("action.completed", "COMPLETED")]
    # The device's new state is read by a poll asked for as after a worker's delivery.
    client = client_row(room.connector_client_id)
    assert client.next_poll_at > utcnow() + datetime.timedelta(seconds=REFRESH_SETTLE / 2)
    stored = ActionRequest.get_by_id(done["id"])
    assert (stored.status, stored.lease_token, stored.delivering_until) == (
        "COMPLETED", None, None)

    refused = _trigger(api, room, {"mode": "manual"})
    assert refused["status"] == "FAILED" and "temp is required" in refused["error"]
    assert len(_calls(netatmo_sim)) == 1  # refused before the call: no temperature


def test_a_provider_refusing_for_now_leaves_the_retry_to_a_worker(api, room, netatmo_sim,
                                                                  start_worker):
    _control(netatmo_sim, mode="usage_limit_429", retry_after=2)
    waiting = _trigger(api, room, {"mode": "max"})
    assert waiting["status"] == "PENDING" and "usage limit" in waiting["error"]
    stored = ActionRequest.get_by_id(waiting["id"])
    assert stored.attempts == 1 and stored.lease_token is None
    assert stored.next_attempt_at - stored.updated_at >= datetime.timedelta(seconds=2)
    _control(netatmo_sim, mode="ok")
    start_worker()
    assert _ended(waiting["id"]).status == "COMPLETED"
    assert sim_stats(netatmo_sim)["setroomthermpoint"] == 2


def test_a_provider_slower_than_a_calls_timeout_leaves_the_request_to_a_worker(
        api, room, netatmo_sim, start_worker):
    """The API's attempt cuts the call where a worker's would (at HTTP_TIMEOUT), and a
    worker's retry completes the request. The simulator performs a call it answers late, as a
    provider may: the action reaches it twice, as it would through a worker's attempts."""
    _control(netatmo_sim, mode="timeout", timeout_seconds=5)
    waiting = _trigger(api, room, {"mode": "max"})
    assert waiting["status"] == "PENDING" and "Timeout" in waiting["error"]
    assert ActionRequest.get_by_id(waiting["id"]).attempts == 1
    _control(netatmo_sim, mode="ok")
    start_worker()
    assert _ended(waiting["id"]).status == "COMPLETED"
    assert sim_stats(netatmo_sim)["setroomthermpoint"] == 2


def test_no_attempt_where_a_calls_timeout_does_not_fit_the_request(
        api, room, netatmo_sim, flask_app, monkeypatch):
    monkeypatch.setitem(flask_app.config, "HTTP_TIMEOUT", delivery.API_CALL_LIMIT + 1)
    queued = _trigger(api, room, {"mode": "max"})
    assert queued["status"] == "PENDING" and _calls(netatmo_sim) == []


def test_an_action_takes_a_slot_only_while_another_stays_free(
        api, room, netatmo_sim, start_worker, flask_app, monkeypatch):
    """A consent's code exchange or an instance's check waits on a provider for a user and no
    worker can make it instead: an action's attempt never takes the last free slot, so one
    slot (`thingbridge api --workers 2`) is never an action's, and no limit (a plain gunicorn)
    means no attempt in the API."""
    queued = []
    for limit in (0, 1):
        monkeypatch.setitem(flask_app.config, "API_OUTSIDE_CALLS", limit)
        queued.append(_trigger(api, room, {"mode": "max"}))
    monkeypatch.setitem(flask_app.config, "API_OUTSIDE_CALLS", 2)
    for handover in (False, True):  # a consent holds the first slot; another action the second
        with flask_app.app_context(), outside_calls.slot(handover=handover) as free:
            assert free
            queued.append(_trigger(api, room, {"mode": "max"}))
    assert [q["status"] for q in queued] == ["PENDING"] * 4 and _calls(netatmo_sim) == []
    done = [_trigger(api, room, {"mode": "max"})]
    monkeypatch.setitem(flask_app.config, "API_OUTSIDE_CALLS", 3)
    with flask_app.app_context(), outside_calls.slot() as free:
        assert free  # a consent holds the first of three: the second is taken, the third free
        done.append(_trigger(api, room, {"mode": "max"}))
    assert [d["status"] for d in done] == ["COMPLETED"] * 2 and len(_calls(netatmo_sim)) == 2
    start_worker()
    assert [_ended(q["id"]).status for q in queued] == ["COMPLETED"] * 4
    assert len(_calls(netatmo_sim)) == 6


def test_a_token_due_for_a_refresh_is_a_workers_to_refresh(api, room, netatmo_sim,
                                                            start_worker):
    """A refresh holds the client's row and rotates the grant: the API leaves it, with the
    action, to a worker."""
    ConnectorClient.update(token_expires_at=utcnow() - datetime.timedelta(hours=1)).where(
        ConnectorClient.id == room.connector_client_id).execute()
    queued = _trigger(api, room, {"mode": "max"})
    assert queued["status"] == "PENDING" and _calls(netatmo_sim) == []
    assert ActionRequest.get_by_id(queued["id"]).lease_token is None
    start_worker()
    assert _ended(queued["id"]).status == "COMPLETED"
    assert sim_stats(netatmo_sim)["refreshes"] == 1


def test_a_token_the_provider_rejects_is_a_workers_to_refresh(api, room, netatmo_sim,
                                                               start_worker):
    """A token our expiry calls fresh that the provider rejects (revoked early, clock skew):
    the API leaves the refresh, and the action, to a worker; nothing was performed."""
    requests.post(f"{netatmo_sim}/_sim/expire_tokens", timeout=5).raise_for_status()
    queued = _trigger(api, room, {"mode": "max"})
    assert queued["status"] == "PENDING" and queued["error"] is None
    stats = sim_stats(netatmo_sim)
    assert stats.get("refreshes", 0) == 0 and stats["setroomthermpoint_calls"] == []
    start_worker()
    assert _ended(queued["id"]).status == "COMPLETED"
    stats = sim_stats(netatmo_sim)
    assert stats["refreshes"] == 1 and len(stats["setroomthermpoint_calls"]) == 1


def test_switched_off_every_attempt_is_a_workers(api, room, netatmo_sim, start_worker,
                                                 flask_app, monkeypatch):
    monkeypatch.setitem(flask_app.config, "ACTIONS_IN_API", False)
    queued = _trigger(api, room, {"mode": "max"})
    assert queued["status"] == "PENDING" and _calls(netatmo_sim) == []
    start_worker()
    assert _ended(queued["id"]).status == "COMPLETED"


def test_an_attempt_broken_off_here_goes_to_a_worker_with_its_claim(
        api, room, netatmo_sim, start_worker, monkeypatch):
    """The API took the request, then failed before the provider (its database went, say):
    the answer is the recorded request, and a worker takes it at once under the same claim.
    The API's lease here outlives the deadline, so only that claim can finish it in time."""
    monkeypatch.setattr(delivery, "RECORDING", 600.0)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(delivery, "deliver", broken)
    queued = _trigger(api, room, {"mode": "max"})
    assert queued["status"] == "PENDING" and _calls(netatmo_sim) == []
    assert ActionRequest.get_by_id(queued["id"]).leased_until > utcnow() + datetime.timedelta(
        seconds=300)
    start_worker()
    assert _ended(queued["id"]).status == "COMPLETED"
    assert len(_calls(netatmo_sim)) == 1


def test_an_api_that_dies_mid_attempt_leaves_the_request_to_a_worker(
        run, api, room, netatmo_sim, start_worker):
    """`thingbridge api` as it starts (3 gunicorn workers), its workers killed while the
    attempt waits on the provider: the recorded request is held for the API's lease only, then
    the dispatcher sends it to a worker, which completes it before the deadline."""
    _control(netatmo_sim, mode="timeout", timeout_seconds=25)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The provider call waits for the kill (10 s at most), not for the tests' 3 s timeout.
    master = run("api", "--port", str(port), env={"THINGBRIDGE_HTTP_TIMEOUT": "10"})
    listening(base)
    answers = []

    def trigger():
        try:
            answers.append(requests.post(f"{base}/api/v1/things/{room.id}/{ACTION}", timeout=60,
                                         json={"mode": "max"}, headers={
                                             "Authorization": f"Bearer {api.token}",
                                             "X-External-Subject-Id": "alice"}))
        except requests.ConnectionError as exc:
            answers.append(exc)

    waiting = threading.Thread(target=trigger)
    waiting.start()
    try:
        wait_until(lambda: sim_stats(netatmo_sim).get("setroomthermpoint") == 1,
                   message="the API's attempt at the provider")
        for pid in children(master.pid):
            os.kill(pid, signal.SIGKILL)
    finally:
        waiting.join(60)
    assert isinstance(answers[0], requests.ConnectionError)  # the trigger's answer is lost...
    [request] = ActionRequest.select()  # ...the request is not
    assert (request.status, request.attempts) == ("PENDING", 0) and request.lease_token
    _control(netatmo_sim, mode="ok")
    start_worker(beat=True)
    # Held for the API's lease (10 s of call and 20 of recording), then the dispatcher's.
    assert _ended(request.id, timeout=90).status == "COMPLETED"
    assert sim_stats(netatmo_sim)["setroomthermpoint"] == 2
