"""GET /api/v1/connectors/descriptions: generated from the installed plugins, no token."""


from thingbridge.connectors.contract import load_connectors


def test_list_has_every_registered_connector(http):
    resp = http.get("/api/v1/connectors/descriptions")
    assert resp.status_code == 200
    by_type = {d["type_id"]: d for d in resp.json}
    assert set(by_type) == set(load_connectors()) == {"netatmo", "openweathermap"}
    owm = by_type["openweathermap"]
    assert owm["name"] == "OpenWeatherMap"
    assert "app_key" in owm["sample_instance_configuration"]
    assert set(owm) == {"id", "type_id", "name", "description", "logo",
                        "sample_instance_configuration", "sample_client_configuration"}


def test_get_one_by_stable_integer_id(http):
    listing = http.get("/api/v1/connectors/descriptions").json
    netatmo = next(d for d in listing if d["type_id"] == "netatmo")
    resp = http.get(f"/api/v1/connectors/descriptions/{netatmo['id']}")
    assert resp.status_code == 200 and resp.json == netatmo
    assert set(resp.json["sample_instance_configuration"]) >= {"client_id", "client_secret",
                                                              "origin_callback_uri"}


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
