"""The one error body: every failure, validation and unexpected errors included, is
{"status", "error", "description"} with the right status, never a stack trace."""

from helpers import DATABASE_URL, PUBLIC_BASE_URL, SECRET_KEY

from thingbridge import create_app

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


def test_an_unexpected_error_is_500_without_a_trace(flask_app, clean_db):
    import thingbridge.db as tdb

    saved = tdb.db.obj
    try:
        app = create_app({"DATABASE_URL": DATABASE_URL, "SECRET_KEYS": SECRET_KEY,
                          "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
                          "BROKER_URL": "memory://", "TESTING": True})

        @app.get("/boom")
        def boom():
            raise RuntimeError("secret detail")

        resp = app.test_client().get("/boom")
    finally:
        tdb.db.initialize(saved)
    assert resp.status_code == 500
    assert resp.json == {"status": 500, "error": "INTERNAL_ERROR",
                         "description": "internal error"}
