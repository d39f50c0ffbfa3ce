"""GET /health, the OpenAPI document and the docs page."""

import re

from helpers import DATABASE_URL, PUBLIC_BASE_URL, SECRET_KEY


def test_health_ok(http):
    resp = http.get("/health")
    assert resp.status_code == 200
    assert resp.json == {"status": "ok", "checks": {"database": {"status": "ok"},
                                                    "broker": {"status": "ok"},
                                                    "secrets": {"status": "ok"}}}


def test_health_503_names_the_broken_dependency_and_only_the_operator_reads_why(
        api, second_app):
    """The detail can name the operator's hosts, ports and users: an app's token is a
    tenant's credential, the metrics token the operator's."""
    broken = second_app({"DATABASE_URL": DATABASE_URL, "SECRET_KEYS": SECRET_KEY,
                         "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "METRICS_TOKEN": "ops-s3cret",
                         "BROKER_URL": "redis://127.0.0.1:1/0"}).test_client()
    anonymous = broken.get("/health")
    tenant = broken.get("/health", headers={"Authorization": f"Bearer {api.token}"})
    insider = broken.get("/health", headers={"Authorization": "Bearer ops-s3cret"})
    forged = broken.get("/health", headers={"Authorization": "Bearer forged"})
    assert tenant.json["checks"]["broker"] == {"status": "error"}
    for resp in (anonymous, insider, forged, tenant):
        assert resp.status_code == 503
        assert resp.json["status"] == "error"
        assert resp.json["checks"]["database"] == {"status": "ok"}
    assert anonymous.json["checks"]["broker"] == {"status": "error"}
    assert forged.json["checks"]["broker"] == {"status": "error"}
    assert insider.json["checks"]["broker"]["status"] == "error"
    assert insider.json["checks"]["broker"]["detail"]


def test_openapi_documents_every_route_scope_and_error(flask_app, http):
    spec = http.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items()
                  for method in ops if method != "parameters"}
    for rule in flask_app.url_map.iter_rules():
        # The console is pages for people, not part of the API.
        if rule.endpoint == "static" or rule.rule.startswith(("/docs", "/openapi.json",
                                                              "/console")):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)
    assert "client_credentials" in str(spec["paths"]["/oauth2/token"]["post"]["requestBody"])
    op = spec["paths"]["/api/v1/connectors/instances"]["post"]
    assert op["security"] == [{"bearerAuth": ["connctd.connector"]}]
    assert {"400", "401", "403", "409"} <= set(op["responses"])
    clients = spec["paths"]["/api/v1/connectors/clients"]["post"]
    assert any(p["name"] == "X-External-Subject-Id" for p in clients["parameters"])


def test_docs_page_is_served_locally(http):
    page = http.get("/docs/")
    assert page.status_code == 200 and b"swagger-ui" in page.data
    assert http.get("/docs/swagger-ui-bundle.js").status_code == 200


def test_unknown_route_and_method_use_standard_body(http):
    resp = http.get("/api/v1/nope")
    assert resp.status_code == 404 and resp.json["error"] == "NOT_FOUND"
    resp = http.put("/api/v1/connectors/descriptions")
    assert resp.status_code == 405 and resp.json["status"] == 405


def test_health_without_the_database_scans_no_secrets(api, second_app, monkeypatch):
    """The secrets cannot be read without the database: the probe says so and waits out no
    second connection attempt or scan."""
    from thingbridge.api import health

    scans = []
    monkeypatch.setattr(health, "check_keys_read_stored_secrets", lambda: scans.append(1))
    monkeypatch.setattr(health, "_secrets_checked", {"keys": None, "until": 0.0, "failure": None})
    down = second_app({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test",
                       "SECRET_KEYS": SECRET_KEY, "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
                       "METRICS_TOKEN": "ops-s3cret"}).test_client()
    resp = down.get("/health", headers={"Authorization": "Bearer ops-s3cret"})
    assert resp.status_code == 503
    assert resp.json["checks"]["database"]["status"] == "error"
    assert resp.json["checks"]["secrets"] == {"status": "error",
                                              "detail": health.NOT_CHECKED}
    assert scans == []


def test_a_secrets_check_the_database_failed_is_not_repeated_by_every_probe(http, monkeypatch):
    """A scan the database failed (a lock held elsewhere, a statement timeout) is reported,
    and tried again after SECRETS_RETRY seconds, not by each probe meanwhile; once it passes,
    it is kept for SECRETS_CHECK_EVERY."""
    from thingbridge.api import health
    from thingbridge.db_pool import DatabaseBusy

    clock, scans = [1000.0], []

    def scan():
        scans.append(clock[0])
        if len(scans) == 1:
            raise DatabaseBusy("canceling statement due to statement timeout")

    monkeypatch.setattr(health.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(health, "check_keys_read_stored_secrets", scan)
    monkeypatch.setattr(health, "_secrets_checked", {"keys": None, "until": 0.0, "failure": None})
    assert [http.get("/health").json["checks"]["secrets"]["status"] for _ in range(3)] == [
        "error"] * 3
    clock[0] += health.SECRETS_RETRY
    assert http.get("/health").status_code == 200
    clock[0] += health.SECRETS_CHECK_EVERY - 1
    assert http.get("/health").status_code == 200
    assert scans == [1000.0, 1000.0 + health.SECRETS_RETRY]
