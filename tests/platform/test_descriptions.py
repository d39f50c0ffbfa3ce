"""GET /api/v1/connectors/descriptions: generated from the installed plugins, no token."""

import threading

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


def test_processes_starting_together_sync_once(flask_app, clean_db):
    """Every API and worker process syncs descriptions at start; concurrent starts must neither
    fail nor number a connector twice."""
    from thingbridge.connectors import registry
    from thingbridge.db import db
    from thingbridge.models import ConnectorDescription

    ConnectorDescription.delete().execute()
    db.close()
    barrier, failures = threading.Barrier(4), []

    def start():
        try:
            with db.connection_context():
                barrier.wait()
                registry.sync_descriptions(flask_app)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.connect(reuse_if_open=True)
    assert failures == []
    rows = sorted(ConnectorDescription.select().tuples(), key=lambda r: r[0])
    assert [r[0] for r in rows] == [1, 2]
