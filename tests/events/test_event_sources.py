"""Which changes emit which events: connector clients (real worker), polls, actions."""

import requests
from helpers import LAMP, OWM_KEY, sync_things, wait_until

from thingbridge.connectors.contract import ComponentSpec, PropertySpec, ThingSpec
from thingbridge.db import utcnow
from thingbridge.models import ConnectorClient, ConnectorInstance
from thingbridge_workers.dispatcher import dispatch

CLIENTS = "/api/v1/connectors/clients"


def types(api, after=0):
    return [e["type"] for e in api.get(f"/api/v1/events?after={after}").json["events"]]


def events(api):
    return api.get("/api/v1/events").json["events"]


def test_connector_client_lifecycle(api, owm_sim, start_worker):
    start_worker()
    assert api.post("/api/v1/connectors/instances", json={
        "connector_type_id": "openweathermap",
        "configuration": {"app_key": OWM_KEY}}).status_code == 201
    client_id = api.post(CLIENTS, json={"connector_type_id": "openweathermap",
                                        "configuration": {"city": "Berlin"}}).json["client_id"]
    wait_until(lambda: "thing.created" in types(api), message="first poll")
    # The first poll's things and the STARTED transition commit together.
    assert types(api) == ["connector.client.created", "connector.client.status_changed",
                          "thing.created"]
    created, started, thing = events(api)
    assert created["data"] == {"client_id": client_id, "connector_type_id": "openweathermap",
                               "status": "STARTING"}
    assert thing["data"]["name"] == "Weather Berlin"
    assert thing["data"]["connectorClientId"] == client_id
    assert started["data"]["old_status"] == "STARTING" and started["data"]["status"] == "STARTED"

    requests.post(f"{owm_sim}/_sim/control", json={"revoked_keys": [OWM_KEY]}, timeout=5)
    ConnectorClient.update(next_poll_at=utcnow()).where(ConnectorClient.id == client_id).execute()
    dispatch()
    wait_until(lambda: types(api)[-1] == "connector.client.status_changed"
               and len(types(api)) == 4, message="error event")
    error = events(api)[-1]["data"]
    assert error["old_status"] == "STARTED" and error["status"] == "ERROR"
    assert "app key" in error["status_reason"]

    assert api.delete(f"{CLIENTS}/{client_id}").status_code == 204
    assert types(api, after=4) == ["thing.deleted", "connector.client.deleted"]
    assert events(api)[-2]["data"] == {"thingId": thing["data"]["thingId"]}


def _spec(temp: str, extra: bool = False, name="Station") -> ThingSpec:
    props = [PropertySpec("temperature", temp, unit="°C"), PropertySpec("humidity", "50")]
    components = [ComponentSpec("climate", properties=props)]
    if extra:
        components.append(ComponentSpec("wind", properties=[PropertySpec("speed", "3")]))
    return ThingSpec("station-1", name, "climate", components)


def test_a_poll_emits_changes_not_repeats(api):
    instance = ConnectorInstance.create(app=api.model.id, type_id="openweathermap",
                                        configuration={"app_key": OWM_KEY})
    client = ConnectorClient.create(app=api.model.id, instance=instance,
                                    type_id="openweathermap", external_subject_id="alice",
                                    configuration={"city": "Berlin"})
    sync_things(client, [_spec("20.5")])
    sync_things(client, [_spec("20.5")])  # nothing changed: no event
    assert types(api) == ["thing.created"]
    sync_things(client, [_spec("21.0")])
    changed = events(api)[-1]
    assert changed["type"] == "thing.property_changed"
    assert changed["data"]["oldValue"] == "20.5" and changed["data"]["newValue"] == "21.0"
    assert changed["data"]["componentId"] == "climate" and changed["data"]["lastUpdate"]
    sync_things(client, [_spec("21.0", extra=True, name="Garden")])
    assert types(api)[-1] == "thing.updated"
    assert events(api)[-1]["data"]["name"] == "Garden"
    sync_things(client, [])
    assert types(api)[-1] == "thing.deleted"
    assert [e["id"] for e in events(api)] == [1, 2, 3, 4]


def test_action_requested_and_finished(api, make_app):
    thing_id = api.post("/api/v1/things", json=LAMP).json["Id"]
    api.post("/api/v1/actions/callback/register", json={"CallbackUrl": "http://127.0.0.1:9/cb"})
    request = api.post(f"/api/v1/things/{thing_id}/components/switch/actions/setOn",
                       json={"on": "true"}).json
    assert api.put(f"/api/v1/actions/requests/{request['id']}",
                   json={"status": "FAILED", "error": "lamp offline"}).status_code == 200
    requested, failed = events(api)[-2:]
    assert requested["type"] == "action.requested" and requested["data"]["id"] == request["id"]
    assert requested["data"]["status"] == "PENDING"
    assert failed["type"] == "action.failed" and failed["data"]["error"] == "lamp offline"
    assert failed["data"]["status"] == "FAILED"


def test_overdue_actions_fail_with_an_event(api):
    import datetime

    from thingbridge.actions.service import expire_overdue
    from thingbridge.models import ActionRequest

    thing_id = api.post("/api/v1/things", json=LAMP).json["Id"]
    api.post("/api/v1/actions/callback/register", json={"CallbackUrl": "http://127.0.0.1:9/cb"})
    request = api.post(f"/api/v1/things/{thing_id}/components/switch/actions/setOn",
                       json={"on": "true"}).json
    ActionRequest.update(deadline=utcnow() - datetime.timedelta(seconds=1)).execute()
    assert expire_overdue() == 1
    last = events(api)[-1]
    assert last["type"] == "action.failed" and last["data"]["error"] == "timeout"
    assert last["data"]["id"] == request["id"]
