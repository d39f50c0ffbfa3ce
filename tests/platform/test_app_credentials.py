"""App credentials over their life: RFC 7009 revocation, the `thingbridge app` commands
(create, list, rotate-secret, disable, enable) and pruning by a real worker."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BROKER_URL, DATABASE_URL, PUBLIC_BASE_URL, SECRET_KEY, basic, wait_until

from thingbridge.models import AccessToken

THINGBRIDGE = str(Path(sys.executable).parent / "thingbridge")
INSTANCES = "/api/v1/connectors/instances"


def _token(http, client_id, secret):
    return http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                     headers={"Authorization": basic(client_id, secret)})


def _revoke(http, client_id, secret, token, **form):
    return http.post("/oauth2/revoke", data={"token": token, **form},
                     headers={"Authorization": basic(client_id, secret)})


def test_a_revoked_token_is_refused_at_once(http, api):
    assert api.get(INSTANCES).status_code == 200
    resp = _revoke(http, api.client_id, api.secret, api.token)
    assert resp.status_code == 200 and resp.json == {}
    assert api.get(INSTANCES).status_code == 401
    assert AccessToken.get().revoked
    # RFC 7009: an unknown (or already revoked) token is answered the same
    assert _revoke(http, api.client_id, api.secret, "not-a-token").status_code == 200
    assert _revoke(http, api.client_id, api.secret, api.token).status_code == 200


def test_a_token_type_hint_is_ignored(http, api):
    """RFC 7009 2.1: a hint the server does not know does not change the answer."""
    for hint in ("refresh_token", "bogus"):
        assert _revoke(http, api.client_id, api.secret, "not-a-token",
                       token_type_hint=hint).status_code == 200
    assert _revoke(http, api.client_id, api.secret, api.token,
                   token_type_hint="bogus").status_code == 200
    assert api.get(INSTANCES).status_code == 401
    resp = http.post("/oauth2/revoke", data={"token_type_hint": "access_token"},
                     headers={"Authorization": basic(api.client_id, api.secret)})
    assert resp.status_code == 400 and resp.json["error"] == "invalid_request"


def test_only_the_owner_revokes_and_only_when_authenticated(http, api, make_app):
    other = make_app("other")
    resp = _revoke(http, other.client_id, other.secret, api.token)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_grant"
    resp = _revoke(http, api.client_id, "wrong", api.token)
    assert resp.status_code == 401 and resp.json["error"] == "invalid_client"
    resp = http.post("/oauth2/revoke", data={"token": api.token})
    assert resp.status_code == 401 and resp.json["status"] == 401
    assert api.get(INSTANCES).status_code == 200


def test_form_values_beyond_their_bounds_are_400(http, api):
    resp = http.post("/oauth2/token", data={"grant_type": "client_credentials",
                                            "scope": "x" * 501},
                     headers={"Authorization": basic(api.client_id, api.secret)})
    assert resp.status_code == 400 and resp.json["error"] == "invalid_request"
    resp = http.post("/oauth2/token", data={"grant_type": "client_credentials",
                                            "client_id": "a\x00b", "client_secret": "s"})
    assert resp.status_code == 400 and "NUL" in resp.json["description"]


@pytest.fixture
def cli(flask_app, clean_db):
    env = {**os.environ, "THINGBRIDGE_DATABASE_URL": DATABASE_URL,
           "THINGBRIDGE_BROKER_URL": BROKER_URL, "THINGBRIDGE_SECRET_KEYS": SECRET_KEY,
           "THINGBRIDGE_PUBLIC_BASE_URL": PUBLIC_BASE_URL}

    def run(*args, ok=True) -> str:
        result = subprocess.run([THINGBRIDGE, *args], env=env, capture_output=True, text=True,
                                timeout=60)
        assert (result.returncode == 0) == ok, result.stdout + result.stderr
        return result.stdout + result.stderr

    return run


def _credentials(output: str) -> tuple[str, str]:
    fields = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    return fields["client_id"], fields["client_secret"]


def _refused_within_cache_bound(flask_app, http, token):
    """Another process (the CLI) revoked: this one stops accepting the token once its cache
    entry is older than TOKEN_CACHE_SECONDS (the margin covers the requests' own time)."""
    wait_until(lambda: http.get(INSTANCES, headers={"Authorization": f"Bearer {token}"})
               .status_code == 401, timeout=flask_app.config["TOKEN_CACHE_SECONDS"] + 10,
               message="token refused")


def test_the_app_commands_rotate_disable_and_enable(cli, http, flask_app):
    client_id, secret = _credentials(cli("app", "create", "backend"))
    legacy_id, _ = _credentials(cli("create-app", "legacy", "--scope", "thingbridge.events"))
    listing = cli("app", "list")
    assert f"{client_id}  backend  active" in listing
    assert f"{legacy_id}  legacy  active  thingbridge.events" in listing

    token = _token(http, client_id, secret).json["access_token"]
    _, new_secret = _credentials(cli("app", "rotate-secret", client_id))
    assert _token(http, client_id, secret).status_code == 401
    assert _token(http, client_id, new_secret).status_code == 200
    assert http.get(INSTANCES, headers={"Authorization": f"Bearer {token}"}).status_code == 200

    assert "revoked 2 tokens" in cli("app", "disable", client_id)
    _refused_within_cache_bound(flask_app, http, token)
    refused = _token(http, client_id, new_secret)
    assert refused.status_code == 401 and refused.json["error"] == "invalid_client"
    assert f"{client_id}  backend  disabled" in cli("app", "list")

    cli("app", "enable", client_id)
    fresh = _token(http, client_id, new_secret).json["access_token"]
    assert http.get(INSTANCES, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    assert http.get(INSTANCES, headers={"Authorization": f"Bearer {token}"}).status_code == 401

    cli("app", "rotate-secret", client_id, "--revoke-tokens")
    _refused_within_cache_bound(flask_app, http, fresh)
    assert "no app with client_id nope" in cli("app", "disable", "nope", ok=False)


@pytest.mark.slow
def test_a_worker_prunes_revoked_and_expired_tokens(http, api, make_app, start_worker):
    from thingbridge.tasks import enqueue

    expired, revoked = make_app("expired"), make_app("revoked")
    AccessToken.update(created_at=AccessToken.created_at - datetime.timedelta(hours=2)).where(
        AccessToken.app == expired.model).execute()
    assert _revoke(http, revoked.client_id, revoked.secret, revoked.token).status_code == 200
    start_worker()
    enqueue("thingbridge.prune_tokens")
    wait_until(lambda: AccessToken.select().count() == 1, message="tokens pruned")
    assert AccessToken.get().app_id == api.model.id
    assert api.get(INSTANCES).status_code == 200
