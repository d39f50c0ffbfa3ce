"""Netatmo through the host: OAuth consent (plain HTTP), polling with rotating refresh tokens,
reauthorization errors, and the setRoomThermPoint action routed to the provider."""

from __future__ import annotations

import datetime
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flows import client_row, consent, netatmo_instance, repoll, sim_stats, wait_status
from helpers import wait_until
from raw_receivers import read_request

from thingbridge.connectors import oauth
from thingbridge.connectors.contract import TransientError
from thingbridge.connectors.registry import build_connector
from thingbridge.db import utcnow
from thingbridge.models import ActionRequest, Component, ConnectorClient, Property, Thing


def test_consent_then_stations_and_rooms_appear(api, netatmo_sim, start_worker):
    start_worker()
    landed = consent(api)
    assert landed["status"] == "STARTING" and "error" not in landed
    client = wait_status(landed["client_id"], "STARTED")
    assert client.tokens["refresh_token"] and client.token_expires_at
    mappings = api.get(f"/api/v1/connectors/clients/{client.id}").json["mappings"]
    ids = {m["connector_thing_id"] for m in mappings}
    assert len([i for i in ids if i.startswith("room:")]) == 2
    assert len(ids) == 7  # station + 4 modules + 2 rooms
    things = api.get("/api/v1/things?expand=components").json
    room = next(t for t in things if t["displayType"] == "THERMOSTAT")
    assert room["components"][0]["actions"][0]["id"] == "setRoomThermPoint"


def test_state_is_single_use(api, netatmo_sim, flask_app):
    netatmo_instance(api)
    created = api.post("/api/v1/connectors/clients", json={"connector_type_id": "netatmo"})
    state = parse_qs(urlsplit(created.headers["Location"]).query)["state"][0]
    first = api.http.get(f"/api/v1/connectors/oauth/callback?state={state}&code=bogus")
    assert first.status_code == 302 and "token_exchange_failed" in first.headers["Location"]
    before = client_row(created.json["client_id"])
    replay = api.http.get(f"/api/v1/connectors/oauth/callback?state={state}&code=bogus")
    assert replay.status_code == 400 and "Location" not in replay.headers
    assert replay.content_type.startswith("text/html")
    assert "already used" in replay.get_data(as_text=True)
    after = client_row(created.json["client_id"])
    assert (after.status, after.status_reason, after.updated_at) == (
        before.status, before.status_reason, before.updated_at)
    unknown = api.http.get("/api/v1/connectors/oauth/callback?state=nope&code=x")
    assert unknown.status_code == 400 and "Location" not in unknown.headers


def test_a_head_request_takes_no_state(api, netatmo_sim):
    """A link checker's HEAD on the callback does nothing: the browser's GET still finishes
    the consent."""
    netatmo_instance(api)
    created = api.post("/api/v1/connectors/clients", json={"connector_type_id": "netatmo"})
    state = parse_qs(urlsplit(created.headers["Location"]).query)["state"][0]
    path = f"/api/v1/connectors/oauth/callback?state={state}&error=access_denied"
    assert api.http.head(path).status_code == 200
    assert client_row(created.json["client_id"]).status == "STARTING"
    resp = api.http.get(path)
    assert resp.status_code == 302 and "error=access_denied" in resp.headers["Location"]


def test_expired_state_changes_no_client(api, netatmo_sim):
    from thingbridge.db import utcnow
    from thingbridge.models import OAuthState

    netatmo_instance(api)
    created = api.post("/api/v1/connectors/clients", json={"connector_type_id": "netatmo"})
    state = parse_qs(urlsplit(created.headers["Location"]).query)["state"][0]
    OAuthState.update(expires_at=utcnow()).execute()
    resp = api.http.get(f"/api/v1/connectors/oauth/callback?state={state}&code=x")
    assert resp.status_code == 400 and "Location" not in resp.headers
    client = client_row(created.json["client_id"])
    assert client.status == "STARTING" and client.tokens is None


def test_denied_consent_sets_error(api, netatmo_sim):
    landed = consent(api, decision="deny")
    assert landed["status"] == "ERROR" and landed["error"] == "access_denied"
    client = client_row(landed["client_id"])
    assert client.status == "ERROR" and "access_denied" in client.status_reason


def test_a_provider_error_that_cannot_be_stored_is_mended(api, netatmo_sim):
    """The callback's ``error`` is anyone's text: a NUL in it is stored as U+FFFD and the end
    user lands where the app asked, as for any refusal (it was a 400 with the state used)."""
    netatmo_instance(api)
    created = api.post("/api/v1/connectors/clients", json={"connector_type_id": "netatmo"})
    state = parse_qs(urlsplit(created.headers["Location"]).query)["state"][0]
    resp = api.http.get(f"/api/v1/connectors/oauth/callback?state={state}&error=bad%00x")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    landed = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert landed["status"] == ["ERROR"] and landed["error"] == ["bad\ufffdx"]
    client = client_row(created.json["client_id"])
    assert (client.status, client.status_reason) == ("ERROR", "consent not given: bad\ufffdx")


def test_expired_access_token_is_refreshed_and_rotated(api, netatmo_sim, start_worker):
    start_worker()
    client_id = consent(api)["client_id"]
    before = wait_status(client_id, "STARTED").tokens
    requests.post(f"{netatmo_sim}/_sim/expire_tokens", timeout=5)
    stamp = client_row(client_id).last_success_at
    repoll(client_id)
    wait_until(lambda: client_row(client_id).last_success_at > stamp, message="repoll")
    after = client_row(client_id).tokens
    assert after["refresh_token"] != before["refresh_token"]
    assert after["access_token"] != before["access_token"]
    stats = sim_stats(netatmo_sim)
    assert stats["refreshes"] == 1


def test_token_answers_that_are_not_tokens(api, netatmo_sim, flask_app, servers, monkeypatch):
    """authlib takes any JSON without "error" for a token. An answer without an access token
    is a transient failure that keeps a refresh token it carries (the provider rotated the old
    one as it answered); an absurd lifetime is capped instead of overflowing after the
    rotation."""
    client_id = consent(api)["client_id"]
    instance = client_row(client_id).instance.configuration
    answers = iter([(b"200 OK", b'{"refresh_token": "R2", "expires_in": 100}'),
                    (b"401 Unauthorized", b'{"message": "unauthorized"}'),
                    (b"200 OK", b'{"access_token": "A3", "refresh_token": "R3", '
                                b'"expires_in": 1e20}'),
                    (b"200 OK", b'{"access_token": "A4", "refresh_token": "R4", '
                                b'"expires_in": 1e999, "expires_at": [1]}'),
                    (b"200 OK", b'{"access_token": "A5", "refresh_token": "R5", '
                                b'"expires_in": "3600.0"}'),
                    (b"200 OK", b'{"access_token": "A6", "refresh_token": "R6", '
                                b'"expires_in": NaN}')])

    def provider(conn):
        read_request(conn.makefile("rb"))
        status, body = next(answers)
        conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)

    monkeypatch.setitem(flask_app.config, "NETATMO_BASE_URL", servers(provider).url())
    connector = build_connector("netatmo")

    def refresh():
        ConnectorClient.update(token_expires_at=utcnow()).where(
            ConnectorClient.id == client_id).execute()
        return oauth.access_token(client_id, connector, instance)

    with pytest.raises(TransientError, match="without an access token"):
        refresh()
    assert client_row(client_id).tokens == {"refresh_token": "R2"}
    with pytest.raises(TransientError, match="without an access token"):
        refresh()
    assert client_row(client_id).tokens == {"refresh_token": "R2"}
    # authlib reads the lifetime as it parses the answer: each of these raised there, after the
    # provider had rotated the refresh token.
    for access, refresh_token, lifetime in (("A3", "R3", 30 * 86400), ("A4", "R4", 30 * 86400),
                                            ("A5", "R5", 3600), ("A6", "R6", None)):
        assert refresh() == access
        client = client_row(client_id)
        assert client.tokens["refresh_token"] == refresh_token
        if lifetime is None:
            assert client.token_expires_at is None
        else:
            left = (client.token_expires_at - utcnow()).total_seconds()
            assert lifetime - 60 <= left <= lifetime


def test_a_home_whose_status_did_not_come_keeps_its_rooms(api, netatmo_sim, monkeypatch):
    """Netatmo answers a home whose relay is offline with an error and no rooms. Mapped as no
    rooms, its room things were deleted and came back with new ids; they stay now, unreachable,
    with their last readings, and the stations go on updating."""
    from thingbridge_netatmo.connector import NetatmoConnector
    from thingbridge_workers.polling import poll

    client_id = consent(api)["client_id"]
    assert poll(client_id, "first") == "ok"
    rooms = {t.id: t for t in Thing.select().where(Thing.display_type == "THERMOSTAT")}
    readings = {t: _values(t) for t in rooms}
    assert rooms and all(readings.values())
    fetch = NetatmoConnector.fetch

    def offline(self, ctx):
        payload = fetch(self, ctx)
        for home_id in payload["homestatus"]:
            payload["homestatus"][home_id] = {"status": "ok", "body": {
                "errors": [{"code": 6, "id": "12:34:56:00:fa:d0"}], "home": {"id": home_id}}}
        return payload

    monkeypatch.setattr(NetatmoConnector, "fetch", offline)
    for token in ("second", "third"):
        ConnectorClient.update(next_poll_at=utcnow()).where(
            ConnectorClient.id == client_id).execute()
        assert poll(client_id, token) == "ok"
        kept = {t.id: t for t in Thing.select().where(Thing.display_type == "THERMOSTAT")}
        assert kept.keys() == rooms.keys()
        assert {t.status for t in kept.values()} == {"UNAVAILABLE"}
        assert {t: _values(t) for t in kept} == readings
    monkeypatch.undo()
    ConnectorClient.update(next_poll_at=utcnow()).where(
        ConnectorClient.id == client_id).execute()
    assert poll(client_id, "back") == "ok"
    back = {t.id: t for t in Thing.select().where(Thing.display_type == "THERMOSTAT")}
    assert back.keys() == rooms.keys() and {t.status for t in back.values()} == {"AVAILABLE"}


def test_a_module_out_of_reach_keeps_its_sensors_and_their_last_readings(api, netatmo_sim):
    """Netatmo answers a module out of reach without readings, with what it measures
    (``data_type``). Mapped from its readings alone, its sensor components were deleted with
    the apps' references to them, and made again when it came back."""
    from thingbridge_workers.polling import poll

    client_id = consent(api)["client_id"]
    assert poll(client_id, "first") == "ok"
    outdoor = Thing.get(Thing.display_type == "OUTDOOR_MODULE")
    before = _properties(outdoor.id)
    assert {"temperature", "humidity"} <= {component for component, _ in before}
    requests.post(f"{netatmo_sim}/_sim/control", json={"unreachable": ["outdoor"]}, timeout=5)
    for token in ("second", "third"):
        ConnectorClient.update(next_poll_at=utcnow()).where(
            ConnectorClient.id == client_id).execute()
        assert poll(client_id, token) == "ok"
        away = _properties(outdoor.id)
        assert Thing.get_by_id(outdoor.id).status == "UNAVAILABLE"
        assert away[("status", "reachable")] == (before[("status", "reachable")][0], "false")
        # Every sensor reading stays, the same rows with the same values.
        assert {key: row for key, row in away.items() if key[0] != "status"} == {
            key: row for key, row in before.items() if key[0] != "status"}
    requests.post(f"{netatmo_sim}/_sim/control", json={"unreachable": []}, timeout=5)
    ConnectorClient.update(next_poll_at=utcnow()).where(
        ConnectorClient.id == client_id).execute()
    assert poll(client_id, "back") == "ok"
    assert Thing.get_by_id(outdoor.id).status == "AVAILABLE"
    assert _properties(outdoor.id).keys() == before.keys()


def _properties(thing_id: str) -> dict:
    """(component, property) -> (row id, value)."""
    return {(c, p): (row, value) for row, c, p, value in Property.select(
        Property.id, Component.component_id, Property.property_id, Property.value).join(
        Component).where(Component.thing == thing_id).tuples()}


def _values(thing_id: str) -> dict:
    return {p.property_id: p.value for p in Property.select().join(Component).where(
        Component.thing == thing_id)}


def test_revoked_grant_is_reauthorization_required(api, netatmo_sim, start_worker):
    start_worker()
    client_id = consent(api)["client_id"]
    wait_status(client_id, "STARTED")
    requests.post(f"{netatmo_sim}/_sim/revoke", timeout=5)
    repoll(client_id)
    client = wait_status(client_id, "ERROR")
    assert client.status_reason == "reauthorization required"


def test_a_refresh_whose_answer_is_lost_leaves_a_grant_only_a_new_consent_repairs(
        api, netatmo_sim, start_worker):
    """Netatmo rotates the refresh token, and its answer never arrives: the poll is a
    transient failure (status kept), and the next refresh, with the token the provider
    rotated away, is invalid_grant: ERROR `reauthorization required`, polled no more. Without
    a grace period at the provider the pair is lost; what the host guarantees is a defined
    state the app can see, not a refresh loop."""
    start_worker()
    client_id = consent(api)["client_id"]
    wait_status(client_id, "STARTED")
    requests.post(f"{netatmo_sim}/_sim/control", json={"lose_refresh_answers": True,
                                                       "timeout_seconds": 5}, timeout=5)
    requests.post(f"{netatmo_sim}/_sim/expire_tokens", timeout=5)
    ConnectorClient.update(token_expires_at=utcnow()).execute()
    repoll(client_id)
    lost = wait_until(lambda: client_row(client_id).failure_count == 1
                      and client_row(client_id), message="a transient failure")
    # The kind of failure, not the provider's URL and the platform's socket details.
    assert (lost.status, lost.status_reason) == ("STARTED", "token endpoint unreachable: "
                                                            "ReadTimeout")
    requests.post(f"{netatmo_sim}/_sim/control", json={"lose_refresh_answers": False},
                  timeout=5)
    repoll(client_id)
    stranded = wait_status(client_id, "ERROR")
    assert stranded.status_reason == "reauthorization required"
    assert stranded.next_poll_at is None
    assert sim_stats(netatmo_sim)["refreshes"] == 1


def test_usage_limit_is_throttling_not_reauth(api, netatmo_sim, start_worker):
    start_worker()
    client_id = consent(api)["client_id"]
    wait_status(client_id, "STARTED")
    requests.post(f"{netatmo_sim}/_sim/control", json={"mode": "usage_limit_429"}, timeout=5)
    repoll(client_id)
    client = wait_until(lambda: client_row(client_id).failure_count == 1 and client_row(client_id),
                        message="throttled")
    assert client.status == "STARTED" and "usage limit" in client.status_reason


def test_set_room_therm_point_reaches_the_provider(api, netatmo_sim, start_worker):
    start_worker()
    client_id = consent(api)["client_id"]
    wait_status(client_id, "STARTED")
    room = Thing.get(Thing.display_type == "THERMOSTAT")
    path = f"/api/v1/things/{room.id}/components/thermostat/actions/setRoomThermPoint"
    resp = api.post(path, json={"mode": "manual", "temp": "22.5"})
    assert resp.status_code == 201, resp.json
    request = wait_until(lambda: ActionRequest.get_by_id(resp.json["id"]).status != "PENDING"
                         and ActionRequest.get_by_id(resp.json["id"]), message="action done")
    assert request.status == "COMPLETED", request.error
    calls = sim_stats(netatmo_sim)["setroomthermpoint_calls"]
    assert calls[-1]["mode"] == "manual" and calls[-1]["temp"] == 22.5
    setpoint = f"/api/v1/things/{room.id}/components/thermostat/properties/setpoint_temperature"
    wait_until(lambda: api.get(setpoint).json["value"] == "22.5", message="property refreshed")
    refused = api.post(path, json={"mode": "manual"})
    failed = wait_until(lambda: ActionRequest.get_by_id(refused.json["id"]).status != "PENDING"
                        and ActionRequest.get_by_id(refused.json["id"]), message="refusal")
    assert failed.status == "FAILED" and "temp is required" in failed.error


def test_action_with_a_rejected_unexpired_token_refreshes_once(api, netatmo_sim, start_worker):
    """The provider refuses an access token the host still thinks valid (revoked early, clock
    skew): the action refreshes once and goes through, as a poll does."""
    start_worker()
    client_id = consent(api)["client_id"]
    before = wait_status(client_id, "STARTED").tokens
    requests.post(f"{netatmo_sim}/_sim/expire_tokens", timeout=5)  # our expiry says fresh
    room = Thing.get(Thing.display_type == "THERMOSTAT")
    resp = api.post(f"/api/v1/things/{room.id}/components/thermostat/actions/setRoomThermPoint",
                    json={"mode": "max"})
    assert resp.status_code == 201, resp.json
    request = wait_until(lambda: ActionRequest.get_by_id(resp.json["id"]).status != "PENDING"
                         and ActionRequest.get_by_id(resp.json["id"]), message="action done")
    assert request.status == "COMPLETED", request.error
    stats = sim_stats(netatmo_sim)
    assert stats["refreshes"] == 1
    assert stats["setroomthermpoint_calls"][-1]["mode"] == "max"
    assert client_row(client_id).tokens["access_token"] != before["access_token"]


def _set_max(api, netatmo_sim) -> str:
    room = Thing.get(Thing.display_type == "THERMOSTAT")
    resp = api.post(f"/api/v1/things/{room.id}/components/thermostat/actions/setRoomThermPoint",
                    json={"mode": "max"})
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def test_an_action_throttled_past_its_deadline_fails_at_once_with_the_providers_reason(
        api, netatmo_sim, start_worker):
    """Netatmo's usage limit (403 code 26, no Retry-After: 300 s assumed) outlasts the
    action's 60 s: one call, FAILED with the limit as its error. Before, the worker tried
    again 1, 2, 4, 8, 16 and 30 s later (6 calls the provider refused) and the request
    ended FAILED with just `timeout`."""
    start_worker()
    wait_status(consent(api)["client_id"], "STARTED")
    requests.post(f"{netatmo_sim}/_sim/control", json={"mode": "usage_limit_403"}, timeout=5)
    request_id = _set_max(api, netatmo_sim)
    request = wait_until(lambda: ActionRequest.get_by_id(request_id).status != "PENDING"
                         and ActionRequest.get_by_id(request_id), message="action done")
    assert request.status == "FAILED"
    assert request.error == "Netatmo usage limit reached: User usage reached"
    assert sim_stats(netatmo_sim)["setroomthermpoint"] == 1
    failed = [e for e in api.get("/api/v1/events?after=0").json["events"]
              if e["type"] == "action.failed"]
    assert [e["data"]["error"] for e in failed] == [request.error]


def test_an_action_throttled_within_its_deadline_waits_as_long_as_the_provider_asks(
        api, netatmo_sim, start_worker):
    """A 429 with `Retry-After: 2`: every retry is due no sooner than that (the backoff's
    first step is 1 s), then the request completes."""
    start_worker()
    wait_status(consent(api)["client_id"], "STARTED")
    requests.post(f"{netatmo_sim}/_sim/control", json={"mode": "usage_limit_429",
                                                       "retry_after": 2}, timeout=5)
    request_id = _set_max(api, netatmo_sim)
    waiting = wait_until(lambda: ActionRequest.get_by_id(request_id).attempts >= 1
                         and ActionRequest.get_by_id(request_id), message="first attempt")
    assert waiting.status == "PENDING" and "usage limit" in waiting.error
    assert waiting.next_attempt_at - waiting.updated_at >= datetime.timedelta(seconds=2)
    requests.post(f"{netatmo_sim}/_sim/control", json={"mode": "ok"}, timeout=5)
    done = wait_until(lambda: ActionRequest.get_by_id(request_id).status != "PENDING"
                      and ActionRequest.get_by_id(request_id), message="action done")
    assert done.status == "COMPLETED", done.error


def test_connector_action_endpoint_verifies_signatures(api, netatmo_sim, start_worker):
    """POST /api/v1/connectors/actions/<token>: signed deliveries are performed, others not."""
    import json

    from thingbridge.actions import signing

    start_worker()
    client_id = consent(api)["client_id"]
    wait_status(client_id, "STARTED")
    key = api.post("/api/v1/actions/callback/register",
                   json={"CallbackUrl": "https://app.example.com/cb"}).json["signingKey"]
    href = api.get("/api/v1/connectors/callbackurl").json["href"]
    path = urlsplit(href).path
    room = Thing.get(Thing.display_type == "THERMOSTAT")
    body = json.dumps({"id": "r1", "thingId": room.id, "componentId": "thermostat",
                       "actionId": "setRoomThermPoint", "status": "PENDING",
                       "parameters": {"mode": "max"}}).encode()
    date = signing.http_date()

    def post(signature, target=path, payload=body, when=date):
        return api.http.post(target, data=payload, headers={
            "Content-Type": "application/json", "Date": when,
            signing.SIGNATURE_HEADER: signature})

    good = signing.signature(key, "POST", f"http://localhost{path}", date, body)
    assert post("sha256=" + "0" * 64).status_code == 401
    assert post(signing.signature("wrong-key", "POST", f"http://localhost{path}", date,
                                  body)).status_code == 401
    stale = signing.http_date(time.time() - 3600)
    assert post(signing.signature(key, "POST", f"http://localhost{path}", stale, body),
                when=stale).status_code == 401
    assert post(good, target="/api/v1/connectors/actions/not-a-token").status_code == 404
    calls = sim_stats(netatmo_sim)["setroomthermpoint_calls"]
    assert calls == []  # nothing unsigned got through
    resp = post(good)
    assert resp.status_code == 204, resp.json
    calls = sim_stats(netatmo_sim)["setroomthermpoint_calls"]
    assert calls[-1]["mode"] == "max"
    refused = json.dumps({"id": "r2", "thingId": room.id, "componentId": "thermostat",
                          "actionId": "setRoomThermPoint", "parameters": {"mode": "hot"}}).encode()
    resp = post(signing.signature(key, "POST", f"http://localhost{path}", date, refused),
                payload=refused)
    assert resp.status_code == 400 and "mode must be" in resp.json["description"]


def test_connector_action_endpoint_is_replay_safe_checked_and_recorded(api, netatmo_sim,
                                                                       start_worker):
    """Malformed signature headers are 401s; parameters are checked against the declaration;
    each request id is one ActionRequest with the usual events, performed once: a captured
    request sent again gets the first answer and reaches the provider no second time."""
    import json

    from thingbridge.actions import signing
    from thingbridge.models import Event

    start_worker()
    wait_status(consent(api)["client_id"], "STARTED")
    key = api.post("/api/v1/actions/callback/register",
                   json={"CallbackUrl": "https://app.example.com/cb"}).json["signingKey"]
    url = api.get("/api/v1/connectors/callbackurl").json["href"]
    room = Thing.get(Thing.display_type == "THERMOSTAT")

    def post(request_id, parameters, headers=None):
        body = json.dumps({"id": request_id, "thingId": room.id, "componentId": "thermostat",
                           "actionId": "setRoomThermPoint", "status": "PENDING",
                           "parameters": parameters}).encode()
        date = signing.http_date()
        return api.http.post(urlsplit(url).path, data=body, headers={
            "Content-Type": "application/json", "Date": date,
            signing.SIGNATURE_HEADER: signing.signature(key, "POST", url, date, body),
            **(headers or {})})

    def provider_calls():
        return sim_stats(netatmo_sim)[
            "setroomthermpoint_calls"]

    for header, value in ((signing.SIGNATURE_HEADER, "sha256=\u00e9\u00e9"),
                          (signing.SIGNATURE_HEADER, "\u00ff" * 80), ("Date", "\u00e9"),
                          ("Date", "Mon, 01 Jan 99999 00:00:00 GMT")):
        resp = post("bad", {"mode": "max"}, {header: value.encode("latin-1")})
        assert resp.status_code == 401 and resp.json["error"] == "BAD_SIGNATURE", resp.json
    resp = post("bad", {"mode": "max", "colour": "red"})
    assert resp.status_code == 400 and resp.json["error"] == "INVALID_PARAMETERS"
    resp = post("bad", {"temp": "warm"})
    assert resp.status_code == 400 and "missing required parameter 'mode'" in \
        resp.json["description"] and "not a NUMBER" in resp.json["description"]
    # The ids that hold action triggers' Idempotency-Keys are not the caller's to choose.
    resp = post("idempotency-key:r1", {"mode": "max"})
    assert resp.status_code == 400 and "reserved" in resp.json["description"], resp.json
    # An empty id would make every later empty id a replay of the first.
    resp = post("", {"mode": "max"})
    assert resp.status_code == 400 and "id" in resp.json["errors"]["json"], resp.json
    assert provider_calls() == [] and not ActionRequest.select().exists()

    assert post("r1", {"mode": "max"}).status_code == 204
    assert post("r1", {"mode": "max"}).status_code == 204  # replayed
    assert len(provider_calls()) == 1
    request = ActionRequest.get(ActionRequest.external_id == "r1")
    assert request.status == "COMPLETED" and request.parameters == {"mode": "max"}
    assert request.app_id == api.model.id and request.external_subject_id == "alice"
    kinds = [e.type for e in Event.select().where(Event.type.startswith("action."))
             .order_by(Event.seq)]
    assert kinds == ["action.requested", "action.completed"]

    refused = post("r2", {"mode": "hot"})
    assert refused.status_code == 400 and refused.json["error"] == "ACTION_REFUSED"
    assert post("r2", {"mode": "hot"}).json == refused.json
    assert ActionRequest.get(ActionRequest.external_id == "r2").status == "FAILED"
    assert len(provider_calls()) == 1
