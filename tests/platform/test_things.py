"""/api/v1/things: create/validate, read (links and expand), mutate, isolation, read-only
connector things."""

import copy
import datetime
import functools

import pytest
from helpers import LAMP, waiting_on

from thingbridge.models import Property

THINGS = "/api/v1/things"


def create(api, body=None):
    resp = api.post(THINGS, json=body or LAMP)
    assert resp.status_code == 201, resp.json
    return resp.json["Id"]


def test_create_and_read_back(api):
    thing_id = create(api)
    thing = api.get(f"{THINGS}/{thing_id}").json
    assert thing["name"] == "Desk lamp" and thing["displayType"] == "core.LIGHT"
    assert thing["mainComponentId"] == "switch" and thing["status"] == "AVAILABLE"
    assert thing["attributes"] == [{"name": "room", "value": "office"}]
    assert thing["componentLinks"] == [{"href": f"http://localhost{THINGS}/{thing_id}"
                                                f"/components/switch"}]
    component = api.get(f"{THINGS}/{thing_id}/components/switch").json
    assert component["componentType"] == "core.SWITCH"
    assert component["actions"] == [{"id": "setOn", "parameters": [
        {"name": "on", "type": "BOOLEAN", "required": True}]}]
    assert len(component["propertyLinks"]) == 2
    prop = api.get(f"{THINGS}/{thing_id}/components/switch/properties/level").json
    assert prop["value"] == "40" and prop["unit"] == "%" and prop["type"] == "NUMBER"
    assert prop["propertyType"] == "core.LEVEL" and prop["lastUpdate"].endswith("Z")


def test_camel_case_keys_are_accepted(api):
    body = copy.deepcopy(LAMP)
    body["displayType"] = body.pop("displaytype")
    body["mainComponentId"] = body.pop("maincomponentid")
    body["components"][0]["componentType"] = body["components"][0].pop("componenttype")
    thing_id = create(api, body)
    assert api.get(f"{THINGS}/{thing_id}").json["displayType"] == "core.LIGHT"


def _broken(mutate):
    body = copy.deepcopy(LAMP)
    mutate(body)
    return body


@pytest.mark.parametrize("body, needle", [
    (_broken(lambda b: b.update(components=[])), "component"),
    (_broken(lambda b: b.update(maincomponentid="nope")), "maincomponentid"),
    (_broken(lambda b: b["components"][0].update(id="bad id!")), "must match"),
    (_broken(lambda b: b["components"].append(dict(b["components"][0], id="SWITCH"))),
     "duplicate component"),
    (_broken(lambda b: b["components"][0]["properties"].append(
        {"id": "ON", "type": "STRING"})), "duplicate property"),
    (_broken(lambda b: b["components"][0].update(properties=[], actions=[])),
     "needs a property or an action"),
    (_broken(lambda b: b["components"][0]["properties"][0].update(type="COLOR")), "type"),
    (_broken(lambda b: b["components"][0]["properties"][1].update(value="loud")),
     "not a NUMBER"),
    (_broken(lambda b: b["components"][0]["properties"][0].update(value="yes")),
     "not a BOOLEAN"),
    (_broken(lambda b: b.pop("name")), "name"),
    (_broken(lambda b: b.update(attributes=[{"value": "x"}])), "attributes"),
    ("not an object", "body"),
])
def test_invalid_things_are_400(api, body, needle):
    resp = api.post(THINGS, json=body)
    assert resp.status_code == 400, resp.json
    assert needle in resp.json["description"]


def test_list_links_and_expand_in_one_response(api):
    ids = [create(api) for _ in range(3)]
    links = api.get(THINGS).json
    assert links == [{"href": f"http://localhost{THINGS}/{i}"} for i in ids]
    expanded = api.get(f"{THINGS}?expand=components").json
    assert [t["id"] for t in expanded] == ids
    props = expanded[0]["components"][0]["properties"]
    assert {p["id"]: p["value"] for p in props} == {"on": "false", "level": "40"}
    assert api.get(f"{THINGS}?expand=everything").status_code == 400


def test_patch_status_and_put_value(api):
    thing_id = create(api)
    assert api.patch(f"{THINGS}/{thing_id}", json={"status": "UNAVAILABLE"}).status_code == 204
    assert api.get(f"{THINGS}/{thing_id}").json["status"] == "UNAVAILABLE"
    assert api.patch(f"{THINGS}/{thing_id}", json={"status": "BROKEN"}).status_code == 400
    path = f"{THINGS}/{thing_id}/components/switch/properties/level"
    # Stamps set long ago, so a change shows whatever the clock's resolution.
    Property.update(last_update=datetime.datetime(2020, 1, 1)).execute()
    before = api.get(path).json["lastUpdate"]
    untouched = api.get(f"{THINGS}/{thing_id}/components/switch/properties/on").json
    assert api.put(path, json={"value": "75"}).status_code == 204
    after = api.get(path).json
    assert after["value"] == "75"
    assert after["lastUpdate"] != before and after["lastUpdate"] > before
    assert api.get(f"{THINGS}/{thing_id}/components/switch/properties/on").json == untouched
    resp = api.put(path, json={"value": "bright"})
    assert resp.status_code == 400 and "NUMBER" in resp.json["description"]
    assert api.put(path, json={}).status_code == 400


def test_scopes(make_app):
    writer = make_app("writer", token_scopes=["connctd.connector"])
    thing_id = create(writer)
    assert writer.get(THINGS).status_code == 403
    reader = writer.__class__(writer.http, make_app("x").token)  # another app: isolation
    assert reader.get(f"{THINGS}/{thing_id}").status_code == 404


def test_isolation_across_apps_and_subjects(api, make_app):
    thing_id = create(api)
    bob = api.as_subject("bob")
    other = make_app("app-b", subject="alice")
    for caller in (bob, other):
        assert caller.get(THINGS).json == []
        assert caller.get(f"{THINGS}/{thing_id}").status_code == 404
        assert caller.get(f"{THINGS}/{thing_id}/components/switch").status_code == 404
        assert caller.patch(f"{THINGS}/{thing_id}", json={"status": "UNKNOWN"}).status_code == 404
        assert caller.put(f"{THINGS}/{thing_id}/components/switch/properties/on",
                          json={"value": "true"}).status_code == 404
        assert caller.delete(f"{THINGS}/{thing_id}").status_code == 404
    assert api.get(f"{THINGS}/{thing_id}").status_code == 200


def test_unknown_component_and_property_are_404(api):
    thing_id = create(api)
    assert api.get(f"{THINGS}/{thing_id}/components/nope").status_code == 404
    assert api.get(f"{THINGS}/{thing_id}/components/switch/properties/nope").status_code == 404


def test_delete(api):
    thing_id = create(api)
    assert api.delete(f"{THINGS}/{thing_id}").status_code == 204
    assert api.get(f"{THINGS}/{thing_id}").status_code == 404


def test_subject_header_required(api):
    assert api.as_subject(None).get(THINGS).status_code == 400
    assert api.as_subject(None).post(THINGS, json=LAMP).status_code == 400


def _queries(caplog, call) -> int:
    """How many SQL statements ``call`` runs (peewee logs each one at DEBUG)."""
    caplog.clear()
    with caplog.at_level("DEBUG", logger="peewee"):
        call()
    return sum(1 for r in caplog.records if r.name == "peewee")


def test_expanded_things_take_one_query_however_many(api, caplog):
    create(api)  # also puts the token in the process's token cache
    expand = lambda: api.get(f"{THINGS}?expand=components")  # noqa: E731
    one = _queries(caplog, expand)
    for _ in range(19):
        create(api)
    assert len(expand().json) == 20
    assert _queries(caplog, expand) == one
    # Things, components, properties and actions in one statement; the token came from the
    # cache.
    assert one == 1
    thing = f"{THINGS}/{expand().json[3]['id']}"
    assert _queries(caplog, lambda: api.get(thing)) == 1



def _change(api, thing_id: str, change: str):
    if change == "status":
        return api.patch(f"{THINGS}/{thing_id}", json={"status": "UNAVAILABLE"})
    return api.put(f"{THINGS}/{thing_id}/components/switch/properties/on", json={"value": "true"})


@pytest.mark.parametrize("change", ["status", "value"])
def test_a_change_that_waited_for_a_delete_is_a_404(api, flask_app, change):
    """A PATCH or PUT that found the thing, then waited for its row while a DELETE of it
    committed, has nothing left to change: 404, as if it had come a moment later."""
    thing_id = create(api)
    with waiting_on(flask_app, "DELETE FROM thing WHERE id = %s", (thing_id,),
                    functools.partial(_change, api, thing_id, change), "SELECT") as (_, answers):
        pass
    assert answers[0].status_code == 404, answers[0].json
    assert answers[0].json["description"] == ("thing not found" if change == "status"
                                              else "property not found")
