"""/api/v1/connectors/instances: create, validate, conflict, list, read, delete, isolation."""

import pytest
from helpers import OWM_KEY

OWM = {"connector_type_id": "openweathermap", "configuration": {"app_key": OWM_KEY}}
BASE = "/api/v1/connectors/instances"


def test_create_returns_201_with_id(api):
    resp = api.post(BASE, json=OWM)
    assert resp.status_code == 201
    assert set(resp.json) == {"id"}


def test_connector_type_may_be_the_description_id(api, http):
    owm_id = next(d["id"] for d in http.get("/api/v1/connectors/descriptions").json
                  if d["type_id"] == "openweathermap")
    resp = api.post(BASE, json={**OWM, "connector_type_id": owm_id})
    assert resp.status_code == 201


def test_missing_app_key_is_400_with_field_error(api):
    resp = api.post(BASE, json={"connector_type_id": "openweathermap", "configuration": {}})
    assert resp.status_code == 400
    assert resp.json["error"] == "INVALID_CONFIGURATION"
    assert "app_key" in resp.json["description"]
    assert "app_key" in resp.json["errors"]["configuration"]


def test_invalid_app_key_is_400_that_says_so(api):
    resp = api.post(BASE, json={"connector_type_id": "openweathermap",
                                "configuration": {"app_key": "f" * 31 + "x"}})
    assert resp.status_code == 400
    assert "key" in resp.json["description"].lower()


def test_second_instance_of_same_type_is_409(api):
    assert api.post(BASE, json=OWM).status_code == 201
    resp = api.post(BASE, json=OWM)
    assert resp.status_code == 409 and resp.json["error"] == "CONFLICT"


def test_same_type_in_another_app_is_fine(api, make_app):
    assert api.post(BASE, json=OWM).status_code == 201
    assert make_app("app-b").post(BASE, json=OWM).status_code == 201


@pytest.mark.parametrize("body, needle", [
    ({"connector_type_id": "nosuch", "configuration": {}}, "nosuch"),
    ({"connector_type_id": 4242, "configuration": {}}, "4242"),
    ({"configuration": {}}, "connector_type_id"),
    ({"connector_type_id": "openweathermap"}, "configuration"),
    ({"connector_type_id": ["x"], "configuration": {}}, "connector_type_id"),
    ({"connector_type_id": "openweathermap", "configuration": "key"}, "configuration"),
    ({**OWM, "surprise": 1}, "surprise"),
])
def test_bad_bodies_are_400(api, body, needle):
    resp = api.post(BASE, json=body)
    assert resp.status_code == 400, resp.json
    assert resp.json["status"] == 400 and needle in resp.json["description"]


def test_malformed_json_is_400(api):
    resp = api.request("POST", BASE, data="{not json",
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json["status"] == 400


def test_list_and_get_never_return_configuration(api):
    instance_id = api.post(BASE, json=OWM).json["id"]
    listing = api.get(BASE)
    assert listing.status_code == 200
    assert listing.json == [{"href": f"http://localhost{BASE}/{instance_id}"}]
    resp = api.get(f"{BASE}/{instance_id}")
    assert resp.status_code == 200
    assert resp.json["id"] == instance_id and resp.json["clients"] == []
    assert resp.json["connector"]["href"].startswith(
        "http://localhost/api/v1/connectors/descriptions/")
    assert OWM_KEY not in resp.get_data(as_text=True)
    assert "configuration" not in resp.json


def test_hrefs_use_configured_public_base_url(flask_app, api, monkeypatch):
    instance_id = api.post(BASE, json=OWM).json["id"]
    monkeypatch.setitem(flask_app.config, "PUBLIC_BASE_URL", "https://iot.example.com/")
    assert api.get(BASE).json == [{"href": f"https://iot.example.com{BASE}/{instance_id}"}]


def test_other_app_gets_404(api, make_app):
    instance_id = api.post(BASE, json=OWM).json["id"]
    other = make_app("app-b")
    assert other.get(f"{BASE}/{instance_id}").status_code == 404
    assert other.delete(f"{BASE}/{instance_id}").status_code == 404
    assert other.get(BASE).json == []
    assert api.get(f"{BASE}/{instance_id}").status_code == 200


def test_delete_is_204_then_404(api):
    instance_id = api.post(BASE, json=OWM).json["id"]
    assert api.delete(f"{BASE}/{instance_id}").status_code == 204
    assert api.get(f"{BASE}/{instance_id}").status_code == 404


def test_delete_with_clients_is_409(api):
    instance_id = api.post(BASE, json=OWM).json["id"]
    created = api.post("/api/v1/connectors/clients", json={
        "connector_type_id": "openweathermap", "configuration": {"city": "Berlin"}})
    assert created.status_code == 201
    resp = api.delete(f"{BASE}/{instance_id}")
    assert resp.status_code == 409
    clients = api.get(f"{BASE}/{instance_id}").json["clients"]
    assert clients == [{"href": f"http://localhost/api/v1/connectors/clients/"
                                f"{created.json['client_id']}"}]
