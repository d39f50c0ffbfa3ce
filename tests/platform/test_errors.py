"""The one error body: every failure, validation and unexpected errors included, is
{"status", "error", "description"} with the right status, never a stack trace."""

import pytest
from helpers import DATABASE_URL, PUBLIC_BASE_URL, SECRET_KEY

HOOKS = "/api/v1/webhooks"


def test_list_field_errors_are_400_not_500(api):
    """A list field's errors are keyed by index (ints) next to field names (strings)."""
    hook = api.post(HOOKS, json={"url": "https://example.com/hook"}).json
    resp = api.patch(f"{HOOKS}/{hook['id']}", json={"event_types": ["", 0]})
    assert resp.status_code == 400, resp.data
    assert resp.json["error"] == "BAD_REQUEST"
    assert "event_types[1]" in resp.json["description"]
    assert resp.json["errors"]["json"]["event_types"]["1"] == ["Not a valid string."]
    resp = api.post(HOOKS, json={"url": 5, "event_types": ["thing.*", None], "x": 1})
    assert resp.status_code == 400 and resp.json["status"] == 400, resp.data
    for needle in ("url", "event_types[1]", "x"):
        assert needle in resp.json["description"]


def test_validation_errors_are_400_in_the_standard_body(api):
    resp = api.post(HOOKS, json={"event_types": "thing.*"})
    assert resp.status_code == 400
    assert set(resp.json) == {"status", "error", "description", "errors"}
    assert resp.json["description"].startswith("invalid request: ")


def test_method_not_allowed_names_the_allowed_methods(http):
    resp = http.put("/api/v1/connectors/descriptions")
    assert resp.status_code == 405 and resp.json["error"] == "METHOD_NOT_ALLOWED"
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_an_unexpected_error_is_500_without_a_trace(second_app, clean_db):
    app = second_app({"DATABASE_URL": DATABASE_URL, "SECRET_KEYS": SECRET_KEY,
                      "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
                      "BROKER_URL": "memory://", "TESTING": True})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    resp = app.test_client().get("/boom")
    assert resp.status_code == 500
    assert resp.json == {"status": 500, "error": "INTERNAL_ERROR",
                         "description": "internal error"}


def test_a_body_over_the_limit_is_413(api, flask_app):
    limit = flask_app.config["MAX_CONTENT_LENGTH"]
    resp = api.post(HOOKS, data=b"x" * (limit + 1), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert resp.json == {"status": 413, "error": "PAYLOAD_TOO_LARGE",
                         "description": resp.json["description"]}
    resp = api.http.post("/oauth2/token", data={"grant_type": "x" * limit})
    assert resp.status_code == 413 and resp.json["status"] == 413


def test_nul_characters_are_400_in_bodies_and_queries_and_404_in_paths(api):
    resp = api.post(HOOKS, json={"url": "https://example.com/\x00"})
    assert resp.status_code == 400 and "NUL" in resp.json["description"]
    resp = api.post("/api/v1/things", json={"name\x00": "lamp"})
    assert resp.status_code == 400
    resp = api.get("/api/v1/events?after=0&limit=1&x=%00")
    assert resp.status_code == 400
    resp = api.get("/api/v1/things/%00")
    assert resp.status_code == 404 and resp.json["error"] == "NOT_FOUND"


@pytest.mark.parametrize("path", [
    "/api/v1/connectors/descriptions/99999999999999999999",
    "/api/v1/connectors/descriptions/2147483648",
    f"/api/v1/things/{'a' * 37}",
    "/api/v1/webhooks/x/deliveries/9223372036854775808",
    # Digits of other scripts are no id (int() reads them: one resource, many URLs).
    "/api/v1/connectors/descriptions/%D9%A1",
    "/api/v1/connectors/descriptions/%EF%BC%91",
    "/api/v1/connectors/clients/%00/reauthorize",
])
def test_ids_beyond_what_storage_holds_are_404(api, path):
    resp = api.get(path)
    assert resp.status_code == 404 and resp.json["status"] == 404


@pytest.mark.parametrize("connector_type_id", [99999999999999999999, "99999999999999999999",
                                               "²", "x" * 101, 0, True])
def test_connector_type_ids_beyond_storage_are_400(api, connector_type_id):
    resp = api.post("/api/v1/connectors/instances", json={
        "connector_type_id": connector_type_id, "configuration": {}})
    assert resp.status_code == 400, resp.json


@pytest.mark.parametrize("field, value", [
    ("name", "n" * 256), ("unit", "u" * 65), ("propertytype", "t" * 256),
])
def test_strings_longer_than_their_columns_are_400(api, field, value):
    prop = {"id": "p", "type": "STRING", field: value}
    resp = api.post("/api/v1/things", json={
        "name": "lamp", "maincomponentid": "c", "components": [{
            "id": "c", "properties": [prop]}]})
    assert resp.status_code == 400 and f"properties[0].{field}" in resp.json["description"]


def test_deleting_an_instance_while_a_client_is_created_under_it_is_409(api, flask_app):
    """The client's insert commits between the DELETE's check and its delete: the RESTRICT
    foreign key refuses the delete, and that is a 409, not a 500."""
    import threading

    import psycopg
    from flows import owm_instance
    from helpers import wait_until

    from thingbridge.models import ConnectorClient, ConnectorInstance

    owm_instance(api)
    instance = ConnectorInstance.get()
    writer = psycopg.connect(DATABASE_URL)  # another process's transaction, held open
    writer.execute(*ConnectorClient.insert(
        id="racer", app=instance.app_id, instance=instance.id, type_id="openweathermap",
        external_subject_id="bob").sql())
    answer = {}
    deleting = threading.Thread(target=lambda: answer.update(
        resp=flask_app.test_client().delete(f"/api/v1/connectors/instances/{instance.id}",
                                            headers=api.headers())))
    deleting.start()
    watcher = psycopg.connect(DATABASE_URL, autocommit=True)
    wait_until(lambda: watcher.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database()").fetchone()[0] == 1, message="delete waits")
    writer.commit()
    deleting.join(timeout=30)
    writer.close()
    watcher.close()
    assert answer["resp"].status_code == 409, answer["resp"].json
    assert "still has connector clients" in answer["resp"].json["description"]
    assert ConnectorInstance.select().count() == 1
