"""GET /api/v1/connectors/descriptions: generated from the installed plugins, no token."""


from thingbridge.connectors.contract import load_connectors


def test_list_has_every_registered_connector(http):
    resp = http.get("/api/v1/connectors/descriptions")
    assert resp.status_code == 200
    by_type = {d["type_id"]: d for d in resp.json}
    assert set(by_type) == set(load_connectors()) == {"netatmo", "openweathermap"}
    owm = by_type["openweathermap"]
    assert owm["name"] == "OpenWeatherMap"
    assert set(owm["sample_instance_configuration"]["configuration"]) == {"app_key"}
    assert set(owm) == {"id", "type_id", "name", "description", "logo",
                        "sample_instance_configuration", "sample_client_configuration"}


def test_get_one_by_stable_integer_id(http):
    listing = http.get("/api/v1/connectors/descriptions").json
    netatmo = next(d for d in listing if d["type_id"] == "netatmo")
    resp = http.get(f"/api/v1/connectors/descriptions/{netatmo['id']}")
    assert resp.status_code == 200 and resp.json == netatmo
    assert set(resp.json["sample_instance_configuration"]["configuration"]) == {
        "client_id", "client_secret", "origin_callback_uri"}


def test_samples_are_whole_create_bodies_in_the_seeds_shape(http):
    """As the connctd description example shows them: the instance sample is a whole
    POST /connectors/instances body, the client sample a whole POST /connectors/clients body
    (no configuration key when the connector needs none)."""
    by_type = {d["type_id"]: d for d in http.get("/api/v1/connectors/descriptions").json}
    netatmo = by_type["netatmo"]
    assert netatmo["sample_client_configuration"] == {"connector_type_id": "netatmo"}
    assert netatmo["sample_instance_configuration"]["connector_type_id"] == "netatmo"
    assert by_type["openweathermap"]["sample_client_configuration"] == {
        "connector_type_id": "openweathermap", "configuration": {"lat": 52.52, "lon": 13.405}}


def test_the_samples_posted_as_they_are_create_an_instance_and_a_client(http, api):
    owm = next(d for d in http.get("/api/v1/connectors/descriptions").json
               if d["type_id"] == "openweathermap")
    instance = api.post("/api/v1/connectors/instances", json=owm["sample_instance_configuration"])
    assert instance.status_code == 201, instance.json
    client = api.post("/api/v1/connectors/clients", json=owm["sample_client_configuration"])
    assert client.status_code == 201, client.json
    assert "warnings" not in instance.json and "warnings" not in client.json


def test_unknown_id_is_404_standard_body(http):
    resp = http.get("/api/v1/connectors/descriptions/9999")
    assert resp.status_code == 404
    assert resp.json["status"] == 404 and resp.json["error"] == "NOT_FOUND"
    assert http.get("/api/v1/connectors/descriptions/abc").status_code == 404


def test_ids_survive_a_resync(flask_app, http):
    from thingbridge.connectors.registry import sync_descriptions

    before = http.get("/api/v1/connectors/descriptions").json
    sync_descriptions(flask_app)
    assert http.get("/api/v1/connectors/descriptions").json == before
