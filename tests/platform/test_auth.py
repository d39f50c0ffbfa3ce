"""POST /oauth2/token (client_credentials) and bearer-token checks on protected routes."""

import datetime

from helpers import basic

from thingbridge.models import AccessToken, App


def _token(http, app_api, **data):
    body = {"grant_type": "client_credentials", **data}
    return http.post("/oauth2/token", data=body,
                     headers={"Authorization": basic(app_api.client_id, app_api.secret)})


def test_basic_auth_issues_bearer_token_with_all_app_scopes(http, api):
    resp = _token(http, api)
    assert resp.status_code == 200
    body = resp.json
    assert body["token_type"].lower() == "bearer"
    assert 3500 <= body["expires_in"] <= 3600
    assert set(body["scope"].split()) == {"connctd.connector", "connctd.things.read",
                                          "connctd.things.action", "thingbridge.events"}


def test_form_credentials_are_accepted(http, api):
    resp = http.post("/oauth2/token", data={"grant_type": "client_credentials",
                                            "client_id": api.client_id,
                                            "client_secret": api.secret})
    assert resp.status_code == 200 and resp.json["access_token"]


def test_requested_subset_of_scopes(http, api):
    resp = _token(http, api, scope="connctd.things.read")
    assert resp.json["scope"] == "connctd.things.read"


def test_scope_not_allowed_for_app_is_left_out(http, make_app):
    limited = make_app("limited", scopes=["connctd.things.read"])
    resp = _token(http, limited, scope="connctd.things.read connctd.connector")
    assert resp.status_code == 200
    assert resp.json["scope"] == "connctd.things.read"


def test_a_scope_the_app_does_not_hold_is_400_invalid_scope(http, make_app):
    """Not a token that can do nothing (RFC 6749 5.2)."""
    limited = make_app("limited", scopes=["connctd.things.read"])
    for scope in ("thingbridge.events", "connctd.connector thingbridge.events"):
        resp = _token(http, limited, scope=scope)
        assert resp.status_code == 400, resp.json
        assert resp.json["error"] == "invalid_scope" and resp.json["status"] == 400
        assert "none of the scopes" in resp.json["description"]
    assert AccessToken.select().count() == 1  # make_app's own


def test_unknown_scope_is_400_with_standard_body(http, api):
    resp = _token(http, api, scope="admin")
    assert resp.status_code == 400
    assert resp.json["error"] == "invalid_scope" and resp.json["status"] == 400
    assert resp.json["description"]


def test_wrong_secret_is_401(http, api):
    resp = http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                     headers={"Authorization": basic(api.client_id, "wrong")})
    assert resp.status_code == 401
    assert resp.json["error"] == "invalid_client" and resp.json["status"] == 401


def test_an_unknown_client_id_costs_and_answers_as_a_wrong_secret(http, api, monkeypatch):
    """One secret check either way, and the same answer: neither the time taken nor the body
    tells which client ids exist (a disabled app's id is as unknown)."""
    from thingbridge.auth import credentials, secret_hash

    checks = []
    check = secret_hash.matches
    monkeypatch.setattr(secret_hash, "matches", lambda *a: checks.append(1) or check(*a))
    other = App.register("disabled")[0]
    credentials.disable(other)
    answers = {}
    for client_id in (api.client_id, "no-such-client", other.client_id):
        for path, data in (("/oauth2/token", {"grant_type": "client_credentials"}),
                           ("/oauth2/revoke", {"token": "x"})):
            checks.clear()
            basic_auth = http.post(path, data=data,
                                   headers={"Authorization": basic(client_id, "wrong")})
            form = http.post(path, data={**data, "client_id": client_id,
                                         "client_secret": "wrong"})
            assert len(checks) == 2, (client_id, path)
            answers.setdefault(path, set()).update(
                (resp.status_code, resp.get_data(as_text=True)) for resp in (basic_auth, form))
    assert [len(seen) for seen in answers.values()] == [1, 1], answers


def test_unsupported_grant_type_is_400(http, api):
    resp = _token(http, api, grant_type="password")
    assert resp.status_code == 400 and resp.json["error"] == "unsupported_grant_type"


def test_missing_token_is_401(api):
    resp = api.__class__(api.http, None).get("/api/v1/connectors/instances")
    assert resp.status_code == 401
    assert resp.json == {"status": 401, "error": "UNAUTHORIZED",
                         "description": "missing, invalid or expired bearer token"}


def test_garbage_token_is_401(api):
    resp = api.__class__(api.http, "not-a-token").get("/api/v1/connectors/instances")
    assert resp.status_code == 401


def test_401_and_403_carry_the_bearer_challenge(api, make_app):
    """RFC 6750 3: the challenge alone without credentials, with the error with them."""
    path = "/api/v1/connectors/instances"
    missing = api.__class__(api.http, None).get(path)
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="thingbridge"'
    garbage = api.__class__(api.http, "not-a-token").get(path)
    assert garbage.headers["WWW-Authenticate"] == (
        'Bearer realm="thingbridge", error="invalid_token"')
    reader = make_app("reader", token_scopes=["connctd.things.read"])
    assert reader.get(path).headers["WWW-Authenticate"] == (
        'Bearer realm="thingbridge", error="insufficient_scope", scope="connctd.connector"')


def test_expired_token_is_401(api):
    AccessToken.update(created_at=AccessToken.created_at - datetime.timedelta(hours=2)).execute()
    assert api.get("/api/v1/connectors/instances").status_code == 401


def test_missing_scope_is_403_insufficient_scope(make_app):
    reader = make_app("reader", token_scopes=["connctd.things.read"])
    resp = reader.get("/api/v1/connectors/instances")
    assert resp.status_code == 403
    assert resp.json["error"] == "insufficient_scope"


def test_tokens_are_stored_hashed(http, api):
    token = _token(http, api).json["access_token"]
    assert not AccessToken.select().where(AccessToken.token_hash == token).exists()
    assert AccessToken.select().count() == 2


def test_secrets_are_stored_as_sha256_and_older_hashes_replaced_at_sign_in(http, api):
    """Secrets are 256 random bits: a slow password hash bought nothing against guessing and
    made every attempt, right or wrong, 100 ms of the API's CPU."""
    from werkzeug.security import generate_password_hash

    from thingbridge.auth import secret_hash

    assert App.get_by_id(api.model.id).client_secret_hash.startswith("sha256$")
    older = generate_password_hash(api.secret)  # as apps made before were stored
    App.update(client_secret_hash=older).where(App.id == api.model.id).execute()
    wrong = http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                      headers={"Authorization": basic(api.client_id, "wrong")})
    assert wrong.status_code == 401
    assert App.get_by_id(api.model.id).client_secret_hash == older  # nothing changed
    assert _token(http, api).status_code == 200
    stored = App.get_by_id(api.model.id).client_secret_hash
    assert stored == secret_hash.make(api.secret) and _token(http, api).status_code == 200
