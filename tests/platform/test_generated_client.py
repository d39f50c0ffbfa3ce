"""A client generated with openapi-python-client from /openapi.json reads every list and
object the API answers, over real HTTP: the document's response schemas are what is sent."""

from __future__ import annotations

import base64
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from flows import owm_client
from helpers import LAMP

from thingbridge.localserver import serving

PACKAGE = "thingbridge_generated_client"


@pytest.fixture(scope="module")
def generated(flask_app, tmp_path_factory):
    """The client package generated from the live document, importable."""
    folder = tmp_path_factory.mktemp("generated")
    document = folder / "openapi.json"
    document.write_bytes(flask_app.test_client().get("/openapi.json").data)
    tool = Path(sys.executable).parent / "openapi-python-client"
    result = subprocess.run([str(tool), "generate", "--path", str(document), "--output-path",
                             str(folder / PACKAGE), "--meta", "none"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stdout.lower(), result.stdout  # every schema understood
    sys.path.insert(0, str(folder))
    yield importlib.import_module(PACKAGE)
    sys.path.remove(str(folder))


class Generated:
    """Calls one generated operation and returns what the client parsed from the answer."""

    def __init__(self, package, client):
        self.package, self.client = package, client

    def __call__(self, tag: str, operation: str, status: int, **kwargs):
        module = importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")
        response = module.sync_detailed(client=self.client, **kwargs)
        assert response.status_code == status, (operation, response.content)
        return response.parsed

    def model(self, name: str):
        return getattr(importlib.import_module(f"{PACKAGE}.models"), name)


def test_every_list_and_object_parses(generated, flask_app, api, simulators):
    subject = {"x_external_subject_id": "alice"}
    owm_client(api)  # an instance and a client the worker has not polled yet
    with serving(flask_app) as server:
        basic = base64.b64encode(f"{api.client_id}:{api.secret}".encode()).decode()
        call = Generated(generated, generated.AuthenticatedClient(
            base_url=server.url, token=basic, prefix="Basic"))
        token = call("oauth2", "post_oauth2_token", 200, body=call.model(
            "PostOauth2TokenBody").from_dict({"grant_type": "client_credentials"}))
        assert isinstance(token, call.model("TokenOut")) and token.access_token

        call.client = generated.AuthenticatedClient(base_url=server.url,
                                                    token=token.access_token)
        descriptions = call("descriptions", "get_api_v1_connectors_descriptions", 200)
        assert {d.type_id for d in descriptions} == {"netatmo", "openweathermap"}
        description = call("descriptions", "get_api_v1_connectors_descriptions_description_id",
                           200, description_id=descriptions[0].id)
        assert isinstance(description, call.model("Description"))

        [instance_link] = call("instances", "get_api_v1_connectors_instances", 200)
        instance = call("instances", "get_api_v1_connectors_instances_instance_id", 200,
                        instance_id=instance_link.href.rsplit("/", 1)[1])
        assert instance.connector.href and len(instance.clients) == 1
        [client_link] = call("clients", "get_api_v1_connectors_clients", 200, **subject)
        client = call("clients", "get_api_v1_connectors_clients_client_id", 200,
                      client_id=client_link.href.rsplit("/", 1)[1], **subject)
        assert client.status.value == "STARTING" and client.mappings == []

        created = call("things", "post_api_v1_things", 201,
                       body=call.model("ThingIn").from_dict(LAMP), **subject)
        links = call("things", "get_api_v1_things", 200, **subject)
        assert [link.href.rsplit("/", 1)[1] for link in links] == [created.id]
        [whole] = call("things", "get_api_v1_things", 200, **subject,
                       expand=call.model("GetApiV1ThingsExpand").COMPONENTS)
        assert isinstance(whole, call.model("ThingOut"))
        assert whole.components[0].properties[1].unit == "%"
        assert whole.attributes[0].name == "room"
        thing = call("things", "get_api_v1_things_thing_id", 200, thing_id=created.id,
                     **subject)
        assert thing.component_links[0].href
        component = call("things", "get_api_v1_things_thing_id_components_component_id", 200,
                         thing_id=created.id, component_id="switch", **subject)
        assert component.actions[0].parameters[0].required is True
        prop = call("things",
                    "get_api_v1_things_thing_id_components_component_id_properties_property_id",
                    200, thing_id=created.id, component_id="switch", property_id="level",
                    **subject)
        assert prop.value == "40" and prop.last_update

        assert call("actions", "post_api_v1_actions_callback_register", 200,
                    body=call.model("CallbackRegistration").from_dict(
                        {"CallbackUrl": "http://localhost:9/actions"})).signing_key
        requested = call(
            "actions", "post_api_v1_things_thing_id_components_component_id_actions_action_id",
            201, thing_id=created.id, component_id="switch", action_id="setOn",
            body=call.model("ParametersIn").from_dict({"on": "true"}), **subject)
        action = call("actions", "get_api_v1_actions_requests_request_id", 200,
                      request_id=requested.id, **subject)
        assert action.status.value == "PENDING" and action.parameters["on"] == "true"
        finished = call("actions", "put_api_v1_actions_requests_request_id", 200,
                        request_id=requested.id, body=call.model(
                            "ActionRequestUpdate").from_dict({"status": "COMPLETED"}))
        assert finished.status.value == "COMPLETED"
        assert call("connector_actions", "get_api_v1_connectors_callbackurl", 200).href

        hook = call("webhooks", "post_api_v1_webhooks", 201, body=call.model(
            "WebhookIn").from_dict({"url": "http://localhost:9/hook"}))
        assert hook.secret.startswith("whsec_")
        [listed] = call("webhooks", "get_api_v1_webhooks", 200)
        assert listed.id == hook.id and listed.created_at
        page = call("webhooks", "get_api_v1_webhooks_webhook_id_deliveries", 200,
                    webhook_id=hook.id)
        assert page.deliveries == [] and page.has_more is False
        rotated = call("webhooks", "post_api_v1_webhooks_webhook_id_rotate_secret", 200,
                       webhook_id=hook.id)
        assert rotated.secret != hook.secret and rotated.previous_valid_until
        replayed = call("webhooks", "post_api_v1_webhooks_webhook_id_replay", 202,
                        webhook_id=hook.id, body=call.model("ReplayIn").from_dict({"after": 0}))
        assert replayed.cursor == 0
        events = call("events", "get_api_v1_events", 200)
        assert [e.type_.value for e in events.events][:2] == ["connector.client.created",
                                                             "thing.created"]
        health = call("health", "get_health", 200)
        assert health.status.value == "ok"

        missing = call("things", "get_api_v1_things_thing_id", 404, thing_id="nope", **subject)
        assert isinstance(missing, call.model("ErrorBody")) and missing.error == "NOT_FOUND"
