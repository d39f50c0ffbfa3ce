"""The connctd connector documentation's own examples, sent as they are written there: the token
alone in `Authorization`, the bodies byte for byte (tabs included). The instance example's
values are placeholders ("...", "http://...."), so the instance is created from the concrete
body the documentation's description example shows as `sample_instance_configuration`."""

import json

import pytest
import requests

# From the documentation's "Retrieve connector descriptions" example.
SEED_INSTANCE_BODY = """{
\t\t"connector_type_id": "netatmo",
\t\t"configuration": {
\t\t\t"client_id": "abc",
\t\t\t"client_secret": "def",
\t\t\t"origin_callback_uri": "http://localhost:9999/callback"
\t\t}
\t}"""
# From its "Create connector client" example.
SEED_CLIENT_BODY = """{
\t"connector_type_id": "netatmo",
\t"configuration": {
\t\t"anyField":"abc"
\t}
}"""


@pytest.fixture
def seed(api, netatmo_sim):
    """The documentation's headers: `Authorization:YOUR TOKEN`, no scheme."""
    requests.post(f"{netatmo_sim}/_sim/clients", json={"client_id": "abc",
                                                       "client_secret": "def"}, timeout=5)
    token = {"Authorization": api.token}
    subject = {**token, "X-External-Subject-Id": "SUBJECT_ID"}
    json_body = {"Content-Type": "application/json"}
    return api.http, token, subject, json_body


def test_the_documented_requests_work_as_written(seed):
    http, token, subject, json_body = seed
    descriptions = http.get("/api/v1/connectors/descriptions")
    assert descriptions.status_code == 200
    netatmo = next(d for d in descriptions.json if d["type_id"] == "netatmo")
    assert netatmo["sample_client_configuration"] == {"connector_type_id": "netatmo"}

    created = http.post("/api/v1/connectors/instances", data=SEED_INSTANCE_BODY,
                        headers={**json_body, **token})
    assert created.status_code == 201, created.json
    assert set(created.json) == {"id"}
    instance_id = created.json["id"]
    listed = http.get("/api/v1/connectors/instances", headers=token)
    assert listed.status_code == 200 and listed.json[0]["href"].endswith(instance_id)
    instance = http.get(f"/api/v1/connectors/instances/{instance_id}", headers=token)
    assert instance.status_code == 200
    assert set(instance.json) == {"id", "clients", "connector"}

    client = http.post("/api/v1/connectors/clients", data=SEED_CLIENT_BODY,
                       headers={**json_body, **subject})
    assert client.status_code == 303, client.json
    assert client.headers["Location"].startswith("http")
    assert client.json["client_id"] and client.json["warnings"] == [
        "configuration.anyField: unknown netatmo client setting, ignored"]
    client_id = client.json["client_id"]
    clients = http.get("/api/v1/connectors/clients", headers=subject)
    assert clients.status_code == 200 and clients.json[0]["href"].endswith(client_id)
    shown = http.get(f"/api/v1/connectors/clients/{client_id}", headers=subject)
    assert shown.status_code == 200
    assert {"id", "instance", "connector", "mappings", "status"} <= set(shown.json)
    assert shown.json["status"] == "STARTING"

    assert http.delete(f"/api/v1/connectors/instances/{instance_id}",
                       headers=token).status_code == 409
    assert http.delete(f"/api/v1/connectors/clients/{client_id}",
                       headers=subject).status_code == 204
    assert http.delete(f"/api/v1/connectors/instances/{instance_id}",
                       headers=token).status_code == 204
    callback = http.get("/api/v1/connectors/callbackurl", headers=token)
    assert callback.status_code == 200 and "/api/v1/connectors/actions/" in callback.json["href"]


def test_a_token_alone_is_a_bearer_token_and_nothing_else_is(seed):
    http, token, _, _ = seed
    assert http.get("/api/v1/connectors/instances", headers=token).status_code == 200
    assert http.get("/api/v1/connectors/instances",
                    headers={"Authorization": f"  {token['Authorization']} "}).status_code == 200
    for value in ("not-a-token", f"Token {token['Authorization']}",
                  f"Basic {token['Authorization']}", "Bearer"):
        resp = http.get("/api/v1/connectors/instances", headers={"Authorization": value})
        assert resp.status_code == 401, value
        assert json.loads(resp.get_data())["status"] == 401
