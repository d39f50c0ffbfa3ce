"""Netatmo plugin and simulator over real HTTP: consent, rotating tokens, error codes, mapping
of real recorded responses, and the thermostat action."""

import json
import re
from pathlib import Path

import pytest
import requests
from flows import sim_stats
from marshmallow import ValidationError

from thingbridge.connectors.contract import (
    ActionError,
    ClientContext,
    ConfigError,
    TokenRejected,
    TransientError,
)
from thingbridge.localserver import serving
from thingbridge_netatmo.connector import NetatmoConnector
from thingbridge_netatmo.mapping import room_things, station_things
from thingbridge_netatmo.schemas import InstanceConfig
from thingbridge_netatmo.simulator import create_simulator

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "netatmo"
ID = re.compile(r"^[a-zA-Z0-9\-_]{1,200}$")
DEMO = {"client_id": "thingbridge-demo", "client_secret": "demo-secret",
        "origin_callback_uri": "http://localhost:3000/done"}


@pytest.fixture
def sim():
    with serving(create_simulator()) as server:
        yield server.url


def grant(sim):
    return requests.post(f"{sim}/_sim/grant", json={"client_id": "thingbridge-demo"},
                         timeout=5).json()


def token_post(sim, **data):
    return requests.post(f"{sim}/oauth2/token", timeout=5, data={
        "client_id": "thingbridge-demo", "client_secret": "demo-secret", **data})


def consent(sim, decision, login="", **params):
    page = requests.get(f"{sim}/oauth2/authorize", timeout=5, params={
        "client_id": "thingbridge-demo", "redirect_uri": "http://localhost/cb", "state": "s1",
        "scope": "read_station", "response_type": "code", **params})
    assert 'id="accept"' in page.text and 'id="deny"' in page.text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    resp = requests.post(f"{sim}/oauth2/authorize", allow_redirects=False, timeout=5,
                         data={**fields, "decision": decision, "login": login})
    assert resp.status_code == 302
    return resp.headers["Location"]


def test_consent_code_is_single_use_and_refresh_tokens_rotate(sim):
    location = consent(sim, "accept")
    code = re.search(r"code=(\w+)", location).group(1)
    assert "state=s1" in location
    first = token_post(sim, grant_type="authorization_code", code=code,
                       redirect_uri="http://localhost/cb")
    assert first.status_code == 200 and first.json()["refresh_token"]
    replay = token_post(sim, grant_type="authorization_code", code=code,
                        redirect_uri="http://localhost/cb")
    assert replay.json() == {"error": "invalid_grant"}
    old = first.json()["refresh_token"]
    rotated = token_post(sim, grant_type="refresh_token", refresh_token=old)
    assert rotated.status_code == 200 and rotated.json()["refresh_token"] != old
    assert token_post(sim, grant_type="refresh_token", refresh_token=old).json() == {
        "error": "invalid_grant"}


def test_deny_redirects_with_access_denied(sim):
    assert "error=access_denied" in consent(sim, "deny")


def test_check_tells_good_from_bad_credentials(sim):
    plugin = NetatmoConnector(base_url=sim)
    plugin.check(DEMO)
    with pytest.raises(ConfigError, match="client_id/client_secret"):
        plugin.check({**DEMO, "client_secret": "wrong"})


def test_fetch_and_map_stations_and_rooms(sim):
    plugin = NetatmoConnector(base_url=sim)
    payload = plugin.fetch(ClientContext(DEMO, {}, grant(sim)["access_token"]))
    things = plugin.map_things(payload, {})
    assert len(things) == 7
    rooms = [t for t in things if t.connector_thing_id.startswith("room:")]
    assert len(rooms) == 2 and rooms[0].components[0].actions[0].id == "setRoomThermPoint"
    for thing in things:
        for component in thing.components:
            assert ID.match(component.id)
            for prop in component.properties:
                assert ID.match(prop.id) and isinstance(prop.value, str)


def test_pinned_reading_bucket_changes_every_value_and_holds(sim):
    plugin = NetatmoConnector(base_url=sim)
    ctx = ClientContext(DEMO, {}, grant(sim)["access_token"])

    def values():
        return {(t.connector_thing_id, c.id, p.id): p.value
                for t in plugin.map_things(plugin.fetch(ctx), {}) for c in t.components
                for p in c.properties}

    def pin(bucket):
        return requests.post(f"{sim}/_sim/control", json={"reading_bucket": bucket}, timeout=5)

    assert pin(1000).ok
    first = values()
    assert values() == first
    assert pin(1001).ok
    changed = {k for k, v in values().items() if first[k] != v}
    assert {k[2] for k in changed} >= {"temperature", "measured_temperature", "humidity"}
    assert pin("soon").status_code == 400 and pin(None).ok


def test_expired_token_asks_the_host_to_refresh(sim):
    token = grant(sim)["access_token"]
    requests.post(f"{sim}/_sim/expire_tokens", timeout=5)
    with pytest.raises(TokenRejected, match="access token rejected"):
        NetatmoConnector(base_url=sim).fetch(ClientContext(DEMO, {}, token))


@pytest.mark.parametrize("mode", ["usage_limit_403", "usage_limit_429"])
def test_usage_limit_is_throttling(sim, mode):
    token = grant(sim)["access_token"]
    requests.post(f"{sim}/_sim/control", json={"mode": mode}, timeout=5)
    with pytest.raises(TransientError, match="usage limit") as info:
        NetatmoConnector(base_url=sim).fetch(ClientContext(DEMO, {}, token))
    assert not getattr(info.value, "token_invalid", False)
    assert info.value.retry_after > 0


def test_real_stations_sample_maps_every_device():
    payload = json.loads((SAMPLES / "getstationsdata.json").read_text())
    things = station_things(payload)
    devices = payload["body"]["devices"]
    first_seen = {}
    for device in devices:
        for item in [device, *device.get("modules", [])]:
            first_seen.setdefault(item["_id"], item)
    assert len(things) == len(first_seen)  # a module listed under two stations maps once
    by_id = {t.connector_thing_id: t for t in things}
    assert any(t.status == "UNAVAILABLE" for t in things)
    for device in devices:
        for module in device.get("modules", []):
            thing, module = by_id[module["_id"]], first_seen[module["_id"]]
            reachable = module.get("reachable", True) and "dashboard_data" in module
            assert thing.status == ("AVAILABLE" if reachable else "UNAVAILABLE")
            if not reachable:  # what it measures stays, its readings unknown (kept)
                sensors = {c.id: [p.value for p in c.properties] for c in thing.components
                           if c.component_type.endswith("_SENSOR")}
                assert sensors.keys() == {kind.lower() for kind in module["data_type"]}
                assert {value for values in sensors.values() for value in values} == {None}
    station = by_id[devices[0]["_id"]]
    temps = {p.id: p.value for c in station.components for p in c.properties
             if c.id == "temperature"}
    assert temps["temperature"] == format(devices[0]["dashboard_data"]["Temperature"], "g")


@pytest.mark.parametrize("answer", [{"status": "ok", "body": {}}, {"status": "ok"},
                                    {"body": {"devices": None}}, {"body": []}])
def test_an_answer_without_its_device_list_is_transient_not_no_devices(answer):
    """Mapped as no devices, it deleted every thing, and the next good poll made them again
    with new ids."""
    with pytest.raises(TransientError, match="without its list of devices"):
        station_things(answer)
    with pytest.raises(TransientError, match="without its list of homes"):
        room_things(answer, {})
    with pytest.raises(TransientError, match="without its list of modules"):
        station_things({"body": {"devices": [{"_id": "70:ee", "type": "NAMain"}]}})
    with pytest.raises(TransientError, match="without its list of rooms"):
        room_things({"body": {"homes": [{"id": "h"}]}}, {})
    # An account without homes or stations: an empty list, as Netatmo answers it.
    assert room_things({"body": {"homes": []}}, {}) == []
    assert station_things({"body": {"devices": [], "user": {}}}) == []


def test_a_room_listed_twice_is_one_thing_and_a_heated_room_without_status_stays():
    homes = {"body": {"homes": [{"id": "h", "rooms": [{"id": "r"}, {"id": "r"}, {"id": "s"}],
                                 "modules": [{"id": "v", "type": "NRV", "room_id": "r"}]}]}}
    twice = room_things(homes, {"h": {"body": {"home": {"id": "h", "rooms": [
        {"id": "r", "therm_measured_temperature": 20}]}}}})
    assert [t.connector_thing_id for t in twice] == ["room:h:r", "room:h:r"]  # host keeps one
    # The home's status lists no rooms: the heated room stays unknown, the other is no thing.
    [kept] = room_things(homes | {"body": {"homes": [homes["body"]["homes"][0] | {
        "rooms": [{"id": "r"}, {"id": "s"}]}]}}, {"h": {"body": {"home": {"id": "h",
                                                                        "rooms": []}}}})
    assert kept.status == "UNAVAILABLE"
    assert {p.value for p in kept.components[0].properties} == {None}


def test_a_reading_a_room_status_leaves_out_is_unknown_not_gone():
    homes = {"body": {"homes": [{"id": "h", "rooms": [{"id": "r", "name": "Hall"}],
                                 "modules": [{"id": "v", "type": "NRV", "room_id": "r"}]}]}}
    status = {"h": {"body": {"home": {"id": "h", "rooms": [
        {"id": "r", "reachable": False, "therm_setpoint_mode": "schedule"}]}}}}
    [room] = room_things(homes, status)
    values = {p.id: p.value for p in room.components[0].properties}
    assert values == {"measured_temperature": None, "setpoint_temperature": None,
                      "setpoint_mode": "schedule"}  # None: the host keeps what it stored
    assert room.status == "UNAVAILABLE"


def test_set_room_therm_point_changes_the_next_homestatus(sim):
    plugin = NetatmoConnector(base_url=sim)
    context = ClientContext(DEMO, {}, grant(sim)["access_token"])
    room = next(t for t in plugin.map_things(plugin.fetch(context), {})
                if t.connector_thing_id.startswith("room:"))
    plugin.perform_action(context, room.connector_thing_id, "thermostat", "setRoomThermPoint",
                          {"mode": "manual", "temp": "21"})
    after = next(t for t in plugin.map_things(plugin.fetch(context), {})
                 if t.connector_thing_id == room.connector_thing_id)
    values = {p.id: p.value for p in after.components[0].properties}
    assert values["setpoint_temperature"] == "21" and values["setpoint_mode"] == "manual"


@pytest.mark.parametrize("params, needle", [
    ({"mode": "hot"}, "mode must be"), ({"mode": "manual"}, "temp is required"),
    ({"mode": "manual", "temp": "warm"}, "temp must be a number"),
    ({"mode": "manual", "temp": "45"}, "between 7 and 30")])
def test_bad_action_parameters(sim, params, needle):
    plugin = NetatmoConnector(base_url=sim)
    with pytest.raises(ActionError, match=needle):
        plugin.perform_action(ClientContext(DEMO, {}, "t"), "room:h:r", "thermostat",
                              "setRoomThermPoint", params)


@pytest.mark.parametrize("uri, ok", [("http://example.com/x", False),
                                     ("http://localhost:3000/x", True),
                                     ("https://example.com/x", True), ("ftp://x/y", False)])
def test_origin_callback_uri_policy(uri, ok):
    config = {**DEMO, "origin_callback_uri": uri}
    if ok:
        assert InstanceConfig().load(config)["origin_callback_uri"] == uri
    else:
        with pytest.raises(ValidationError):
            InstanceConfig().load(config)


def _code(location: str) -> str:
    return re.search(r"code=(\w+)", location).group(1)


def _exchange(sim, code, **extra):
    return token_post(sim, grant_type="authorization_code", code=code,
                      redirect_uri="http://localhost/cb", **extra)


def test_pkce_s256_binds_the_code_to_its_verifier(sim):
    """RFC 7636 appendix B's example pair."""
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    challenge = {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                 "code_challenge_method": "S256"}
    assert _exchange(sim, _code(consent(sim, "accept", **challenge))).json()[
        "error"] == "invalid_grant"  # no verifier
    assert _exchange(sim, _code(consent(sim, "accept", **challenge)),
                     code_verifier=verifier[:-1] + "l").json()["error"] == "invalid_grant"
    good = _exchange(sim, _code(consent(sim, "accept", **challenge)), code_verifier=verifier)
    assert good.status_code == 200 and good.json()["access_token"]
    assert sim_stats(sim)["pkce_verified"] == 1


def test_pkce_with_an_unknown_method_is_refused_at_the_consent_page(sim):
    location = requests.get(f"{sim}/oauth2/authorize", allow_redirects=False, timeout=5, params={
        "client_id": "thingbridge-demo", "redirect_uri": "http://localhost/cb", "state": "s1",
        "code_challenge": "x" * 43, "code_challenge_method": "S512"}).headers["Location"]
    assert "error=invalid_request" in location and "state=s1" in location


def test_the_same_login_is_the_same_account(sim):
    def station(location):
        token = _exchange(sim, _code(location)).json()["access_token"]
        return NetatmoConnector(base_url=sim).fetch(ClientContext(DEMO, {}, token))[
            "stations"]["body"]["devices"][0]["_id"]

    alice = station(consent(sim, "accept", login="alice@example.com"))
    assert station(consent(sim, "accept", login="alice@example.com")) == alice
    assert station(consent(sim, "accept")) != alice
