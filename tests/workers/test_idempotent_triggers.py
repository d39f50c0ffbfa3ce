"""``Idempotency-Key`` on an action trigger (actions/idempotency.py): a client that lost the
answer repeats the trigger with the same key and gets the first request, never a second
action on the device."""

from __future__ import annotations

import datetime
import threading

import pytest
from flows import sim_stats
from helpers import LAMP
from prometheus_client.parser import text_string_to_metric_families

from thingbridge.actions import idempotency
from thingbridge.models import ActionRequest, RateWindow

ACTION = "components/thermostat/actions/setRoomThermPoint"
KEY = "7f1c0a52-3c8e-4a43-9d2b-0b6a6f8f2d11"


pytestmark = pytest.mark.usefixtures("api_attempts")


def _trigger(api, thing_id, body, key=KEY, path=ACTION):
    headers = {} if key is None else {idempotency.HEADER: key}
    return api.post(f"/api/v1/things/{thing_id}/{path}", json=body, headers=headers)


def _performed(netatmo_sim) -> list[tuple]:
    return [(c["mode"], c["temp"]) for c in sim_stats(netatmo_sim)["setroomthermpoint_calls"]]


def _requested(api) -> int:
    return sum(e["type"] == "action.requested"
               for e in api.get("/api/v1/events?after=0").json["events"])


def test_a_repeated_key_answers_the_first_request_and_performs_nothing(api, room, netatmo_sim):
    first = _trigger(api, room.id, {"mode": "manual", "temp": "21"})
    assert first.status_code == 201 and first.json["status"] == "COMPLETED"
    assert idempotency.REPLAYED not in first.headers
    again = _trigger(api, room.id, {"mode": "manual", "temp": 21})  # the same, as a number
    assert again.status_code == 201, again.json
    assert again.headers[idempotency.REPLAYED] == "true"
    assert again.json == first.json
    # The key may come as a structured-field string, quoted.
    quoted = _trigger(api, room.id, {"mode": "manual", "temp": "21"}, key=f'"{KEY}"')
    assert quoted.json["id"] == first.json["id"]
    assert _performed(netatmo_sim) == [("manual", 21.0)]
    assert ActionRequest.select().count() == 1 and _requested(api) == 1
    # Without a key, or with another, a trigger is a new action.
    assert _trigger(api, room.id, {"mode": "manual", "temp": "21"}, key=None).json["id"] != (
        first.json["id"])
    assert _trigger(api, room.id, {"mode": "manual", "temp": "21"}, key="other").json["id"] != (
        first.json["id"])
    assert len(_performed(netatmo_sim)) == 3


def _replays(http) -> dict[str, float]:
    families = text_string_to_metric_families(http.get("/metrics").get_data(as_text=True))
    return {s.labels["outcome"]: s.value for family in families for s in family.samples
            if s.name == "thingbridge_action_replays_total"}


def test_a_key_reused_for_another_trigger_is_refused(api, room, netatmo_sim):
    before = _replays(api.http)
    first = _trigger(api, room.id, {"mode": "manual", "temp": "21"}).json
    _trigger(api, room.id, {"mode": "manual", "temp": "21"})
    for other in ({"mode": "manual", "temp": "22"}, {"mode": "home"}):
        resp = _trigger(api, room.id, other)
        assert resp.status_code == 422, resp.json
        assert resp.json["error"] == "IDEMPOTENCY_KEY_REUSED"
        assert first["id"] not in resp.get_data(as_text=True)
    # Another subject of the same app learns nothing of the first request either.
    other_subject = _trigger(api.as_subject("bob"), room.id, {"mode": "manual", "temp": "21"})
    assert other_subject.status_code == 422
    assert first["id"] not in other_subject.get_data(as_text=True)
    assert _performed(netatmo_sim) == [("manual", 21.0)]
    assert ActionRequest.select().count() == 1
    # Operators see both in /metrics (no label names an app or a subject).
    after = _replays(api.http)
    assert {k: after[k] - before.get(k, 0) for k in after} == {"replayed": 1, "refused": 3}


def test_keys_are_the_apps_own(api, make_app):
    """Two apps may use the same key, each for its own request; a key never reaches the ids
    the signed connector-actions endpoint keeps."""
    other = make_app("other")
    ids = []
    for app in (api, other):
        app.post("/api/v1/actions/callback/register",
                 json={"callbackUrl": "https://example.com/a"})
        thing_id = app.post("/api/v1/things", json=LAMP).json["Id"]
        resp = _trigger(app, thing_id, {"on": "true"}, path="components/switch/actions/setOn")
        assert resp.status_code == 201 and resp.json["status"] == "PENDING"
        ids.append(resp.json["id"])
    assert ids[0] != ids[1]
    stored = {r.external_id for r in ActionRequest.select()}
    assert stored == {idempotency.stored(KEY)} and KEY not in stored


def test_a_key_is_kept_24_hours(api, room, netatmo_sim):
    first = _trigger(api, room.id, {"mode": "manual", "temp": "21"}).json
    ActionRequest.update(created_at=ActionRequest.created_at - datetime.timedelta(hours=25)).where(
        ActionRequest.id == first["id"]).execute()
    later = _trigger(api, room.id, {"mode": "manual", "temp": "22"})
    assert later.status_code == 201 and later.json["status"] == "COMPLETED"
    assert later.json["id"] != first["id"] and idempotency.REPLAYED not in later.headers
    assert ActionRequest.get_by_id(first["id"]).external_id is None
    assert _performed(netatmo_sim) == [("manual", 21.0), ("manual", 22.0)]


def test_a_trigger_that_loses_the_race_for_its_key_answers_the_winner(api, room, netatmo_sim,
                                                                      monkeypatch):
    """Two triggers with one key at once: both pass the look-up, one records; the other's
    insert meets the key's unique index and answers the winner's request, spending nothing."""
    first = _trigger(api, room.id, {"mode": "manual", "temp": "21"}).json
    spent = RateWindow.get().used
    monkeypatch.setattr(idempotency, "earlier", lambda *args: None)  # as if not yet committed
    raced = _trigger(api, room.id, {"mode": "manual", "temp": "21"})
    assert raced.status_code == 201, raced.json
    assert raced.headers[idempotency.REPLAYED] == "true" and raced.json["id"] == first["id"]
    assert _performed(netatmo_sim) == [("manual", 21.0)]
    assert ActionRequest.select().count() == 1 and _requested(api) == 1
    assert RateWindow.get().used == spent
    # One that raced it with other parameters is refused, as a repeat after it would be.
    other = _trigger(api, room.id, {"mode": "manual", "temp": "23"})
    assert other.status_code == 422 and other.json["error"] == "IDEMPOTENCY_KEY_REUSED"
    assert first["id"] not in other.get_data(as_text=True)
    assert len(_performed(netatmo_sim)) == 1 and RateWindow.get().used == spent


def _at_once(flask_app, api, monkeypatch, thing_id, bodies):
    """Send a trigger of each of ``bodies`` with one key at once, each from its own thread:
    every one looks the key up before any records (they wait for each other after the
    look-up), so the key's unique index decides. Their answers, in order."""
    look_up, met = idempotency.earlier, threading.Barrier(len(bodies))

    def then_wait(*args):
        found = look_up(*args)
        met.wait(timeout=30)
        return found

    monkeypatch.setattr(idempotency, "earlier", then_wait)
    answers = [None] * len(bodies)

    def send(i, body):
        with flask_app.app_context():
            answers[i] = _trigger(api, thing_id, body)

    threads = [threading.Thread(target=send, args=(i, body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


@pytest.mark.parametrize("limit", [6000, 1])
def test_repeats_at_once_record_one_request(flask_app, api, room, netatmo_sim, monkeypatch,
                                            limit):
    """Three repeats at once: one records and performs; the others answer its request,
    whichever way they lost: at the key's index, or (the first taking the minute's last use
    of a limit of 1) refused by the spent rate."""
    monkeypatch.setitem(flask_app.config, "ACTION_TRIGGERS_PER_MINUTE", limit)
    answers = _at_once(flask_app, api, monkeypatch, room.id, [{"mode": "max"}] * 3)
    assert [a.status_code for a in answers] == [201] * 3, [a.json for a in answers]
    assert len({a.json["id"] for a in answers}) == 1
    assert sorted(a.headers.get(idempotency.REPLAYED, "") for a in answers) == [
        "", "true", "true"]
    assert [mode for mode, _ in _performed(netatmo_sim)] == ["max"]
    assert ActionRequest.select().count() == 1 and _requested(api) == 1
    assert RateWindow.get().used == 1


def test_another_trigger_at_once_with_the_key_is_refused(flask_app, api, room, netatmo_sim,
                                                         monkeypatch):
    """Two different triggers with one key at the same moment: one records and performs, the
    other is a 422 that says nothing of it, and is not performed."""
    answers = _at_once(flask_app, api, monkeypatch, room.id,
                       [{"mode": "manual", "temp": "20"}, {"mode": "manual", "temp": "22"}])
    assert sorted(a.status_code for a in answers) == [201, 422], [a.json for a in answers]
    [won] = [a for a in answers if a.status_code == 201]
    [lost] = [a for a in answers if a.status_code == 422]
    assert lost.json["error"] == "IDEMPOTENCY_KEY_REUSED"
    assert won.json["id"] not in lost.get_data(as_text=True)
    assert _performed(netatmo_sim) == [("manual", float(won.json["parameters"]["temp"]))]
    assert ActionRequest.select().count() == 1 and _requested(api) == 1
    assert RateWindow.get().used == 1


def test_a_replay_spends_no_trigger(api, room, netatmo_sim, monkeypatch):
    monkeypatch.setitem(api.http.application.config, "ACTION_TRIGGERS_PER_MINUTE", 1)
    assert _trigger(api, room.id, {"mode": "manual", "temp": "21"}).status_code == 201
    assert _trigger(api, room.id, {"mode": "manual", "temp": "21"}).status_code == 201
    assert _trigger(api, room.id, {"mode": "manual", "temp": "21"}, key="new").status_code == 429


@pytest.mark.parametrize("key", ["", " ", '""', '"', '"""', "x" * 129, "has space",
                                 "caf\u00e9", "tab\there", "a,b", "a, b", '"a"b"', '"a'])
def test_a_malformed_key_is_a_400(api, room, key):
    resp = api.http.post(f"/api/v1/things/{room.id}/{ACTION}", json={"mode": "home"},
                         headers=api.headers({idempotency.HEADER: key.encode().decode("latin-1")}))
    assert resp.status_code == 400, resp.json
    assert resp.json["error"] == "INVALID_IDEMPOTENCY_KEY"
    assert ActionRequest.select().count() == 0
