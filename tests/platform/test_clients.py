"""/api/v1/connectors/clients: per-subject clients, 201 for API-key and 303 for OAuth types."""

from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import OWM_KEY, sync_things, waiting_on

from thingbridge.connectors.contract import ComponentSpec, PropertySpec, ThingSpec
from thingbridge.models import ConnectorClient, ConnectorInstance, OAuthState, ThingMapping
from thingbridge.schemas.common import ISO

CLIENTS = "/api/v1/connectors/clients"
OWM_CLIENT = {"connector_type_id": "openweathermap", "configuration": {"city": "Berlin"}}
NETATMO_INSTANCE = {"connector_type_id": "netatmo", "configuration": {
    "client_id": "thingbridge-demo", "client_secret": "demo-secret",
    "origin_callback_uri": "http://localhost:3000/connected"}}


@pytest.fixture
def owm(api):
    assert api.post("/api/v1/connectors/instances", json={
        "connector_type_id": "openweathermap",
        "configuration": {"app_key": OWM_KEY}}).status_code == 201
    return api


def test_create_api_key_client_is_201_and_due_for_polling(owm):
    resp = owm.post(CLIENTS, json=OWM_CLIENT)
    assert resp.status_code == 201
    client = ConnectorClient.get_by_id(resp.json["client_id"])
    assert client.status == "STARTING" and client.next_poll_at is not None
    assert client.external_subject_id == "alice"


def test_subject_header_is_required(owm):
    resp = owm.as_subject(None).post(CLIENTS, json=OWM_CLIENT)
    assert resp.status_code == 400 and resp.json["error"] == "MISSING_SUBJECT"
    assert owm.as_subject("  ").get(CLIENTS).status_code == 400


def test_duplicate_subject_and_type_is_409(owm):
    assert owm.post(CLIENTS, json=OWM_CLIENT).status_code == 201
    assert owm.post(CLIENTS, json=OWM_CLIENT).status_code == 409
    assert owm.as_subject("bob").post(CLIENTS, json=OWM_CLIENT).status_code == 201


def test_no_instance_is_400(api):
    resp = api.post(CLIENTS, json=OWM_CLIENT)
    assert resp.status_code == 400 and resp.json["error"] == "NO_INSTANCE"


def test_an_instance_deleted_while_its_client_is_created_is_400_no_instance(owm, flask_app):
    """The instance's DELETE commits while the client's INSERT waits for its row: the
    foreign key refuses the client, which is no other client of the subject (409)."""
    instance_id = ConnectorInstance.get().id
    with waiting_on(flask_app, "DELETE FROM connector_instance WHERE id = %s", (instance_id,),
                    lambda: owm.as_subject("fresh").post(CLIENTS, json=OWM_CLIENT),
                    "INSERT") as (_, answers):
        pass
    assert answers[0].status_code == 400, answers[0].json
    assert answers[0].json["error"] == "NO_INSTANCE"
    assert ConnectorClient.select().count() == 0


def test_invalid_client_configuration_is_400(owm):
    resp = owm.post(CLIENTS, json={"connector_type_id": "openweathermap",
                                   "configuration": {"lat": 95, "lon": 10}})
    assert resp.status_code == 400 and resp.json["error"] == "INVALID_CONFIGURATION"


def test_get_and_list_are_per_subject(owm):
    client_id = owm.post(CLIENTS, json=OWM_CLIENT).json["client_id"]
    resp = owm.get(f"{CLIENTS}/{client_id}")
    assert resp.status_code == 200
    assert resp.json["id"] == client_id and resp.json["status"] == "STARTING"
    assert resp.json["mappings"] == []
    assert resp.json["instance"]["href"].startswith("http://localhost/api/v1/connectors/instances/")
    assert resp.json["connector"]["href"].startswith(
        "http://localhost/api/v1/connectors/descriptions/")
    assert owm.get(CLIENTS).json == [{"href": f"http://localhost{CLIENTS}/{client_id}"}]
    bob = owm.as_subject("bob")
    assert bob.get(CLIENTS).json == []
    assert bob.get(f"{CLIENTS}/{client_id}").status_code == 404
    assert bob.delete(f"{CLIENTS}/{client_id}").status_code == 404


def test_a_client_with_its_mappings_is_read_in_one_statement(owm, caplog):
    client_id = owm.post(CLIENTS, json=OWM_CLIENT).json["client_id"]
    client = ConnectorClient.get_by_id(client_id)
    sync_things(client, [ThingSpec(f"station-{n}", f"Station {n}", "climate", [ComponentSpec(
        "climate", properties=[PropertySpec("temperature", "20.5", unit="°C")])])
        for n in (3, 1, 2)])
    caplog.clear()
    with caplog.at_level("DEBUG", logger="peewee"):
        shown = owm.get(f"{CLIENTS}/{client_id}").json
    assert sum(1 for r in caplog.records if r.name == "peewee") == 1  # token: from the cache
    stored = ThingMapping.select().where(ThingMapping.client == client_id)
    assert shown["mappings"] == [
        {"connector_thing_id": m.connector_thing_id, "thing_id": m.thing_id}
        for m in sorted(stored, key=lambda m: m.connector_thing_id)]
    assert [m["connector_thing_id"] for m in shown["mappings"]] == [
        "station-1", "station-2", "station-3"]
    # Every time the API shows is UTC and says so (RFC 3339).
    assert shown["status_since"] == client.status_since.strftime(ISO)
    assert shown["next_poll_at"].endswith("Z") and shown["last_polled_at"] is None


def test_other_app_same_subject_gets_404(owm, make_app):
    client_id = owm.post(CLIENTS, json=OWM_CLIENT).json["client_id"]
    other = make_app("app-b", subject="alice")
    assert other.get(f"{CLIENTS}/{client_id}").status_code == 404
    assert other.delete(f"{CLIENTS}/{client_id}").status_code == 404
    assert other.get(CLIENTS).json == []


def test_delete_is_204_then_404(owm):
    client_id = owm.post(CLIENTS, json=OWM_CLIENT).json["client_id"]
    assert owm.delete(f"{CLIENTS}/{client_id}").status_code == 204
    assert owm.get(f"{CLIENTS}/{client_id}").status_code == 404
    assert not ConnectorClient.select().exists()


def test_oauth_client_is_303_to_provider_with_single_use_state(api, flask_app):
    assert api.post("/api/v1/connectors/instances", json=NETATMO_INSTANCE).status_code == 201
    resp = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    query = parse_qs(location.query)
    assert location.path == "/oauth2/authorize"
    assert f"{location.scheme}://{location.netloc}" == flask_app.config["NETATMO_BASE_URL"]
    assert query["client_id"] == ["thingbridge-demo"]
    assert query["redirect_uri"] == ["http://localhost/api/v1/connectors/oauth/callback"]
    assert query["scope"] == ["read_station read_thermostat write_thermostat"]
    assert len(query["state"][0]) >= 32
    assert resp.json["client_id"] and resp.json["href"] == resp.headers["Location"]
    state = OAuthState.get()
    assert state.state_hash != query["state"][0]  # only the hash is stored
    ttl = (state.expires_at - state.created_at).total_seconds()
    assert 590 <= ttl <= 610


def test_a_reauthorization_racing_the_clients_delete_is_a_404(api, flask_app):
    """The reauthorization takes the client's row before its consent states, as the DELETE
    does: the one that comes second waits, and finds the client gone (a 404), where the two
    orders met in a deadlock (503) every time."""
    assert api.post("/api/v1/connectors/instances", json=NETATMO_INSTANCE).status_code == 201
    client_id = api.post(CLIENTS, json={"connector_type_id": "netatmo"}).json["client_id"]
    with waiting_on(flask_app, "DELETE FROM connector_client WHERE id = %s", (client_id,),
                    lambda: api.post(f"{CLIENTS}/{client_id}/reauthorize"),
                    "SELECT") as (_, answers):
        pass
    assert answers[0].status_code == 404, answers[0].json
    assert answers[0].json["description"] == "connector client not found"
    assert not OAuthState.select().exists()


def test_links_and_redirect_uri_follow_a_public_base_url_with_a_path(api, flask_app,
                                                                     monkeypatch):
    assert api.post("/api/v1/connectors/instances", json=NETATMO_INSTANCE).status_code == 201
    monkeypatch.setitem(flask_app.config, "PUBLIC_BASE_URL", "https://iot.example.com/tb/")
    resp = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["redirect_uri"] == ["https://iot.example.com/tb/api/v1/connectors/oauth/callback"]
    client = api.get(f"{CLIENTS}/{resp.json['client_id']}").json
    assert client["instance"]["href"].startswith(
        "https://iot.example.com/tb/api/v1/connectors/instances/")
    assert api.get("/api/v1/connectors/callbackurl").json["href"].startswith(
        "https://iot.example.com/tb/api/v1/connectors/actions/")
