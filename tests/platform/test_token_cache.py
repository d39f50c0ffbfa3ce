"""Bearer tokens are read from the database once per TOKEN_CACHE_SECONDS per process, and a
revocation made by another process takes effect within that bound."""

from __future__ import annotations

import pytest
from helpers import wait_until

from thingbridge.models import AccessToken

INSTANCES = "/api/v1/connectors/instances"


def _token_queries(caplog, call) -> int:
    caplog.clear()
    with caplog.at_level("DEBUG", logger="peewee"):
        assert call().status_code == 200
    return sum(1 for r in caplog.records
               if r.name == "peewee" and 'FROM "access_token"' in str(r.msg))


@pytest.fixture
def cache_seconds(flask_app, monkeypatch):
    def set_to(seconds: float) -> float:
        monkeypatch.setitem(flask_app.config, "TOKEN_CACHE_SECONDS", seconds)
        return seconds
    return set_to


def _revoke_elsewhere(api) -> None:
    """Revoke as another process would: in the database, without this process's cache
    hearing of it (``credentials.revoke_all`` also empties the local cache)."""
    assert AccessToken.update(revoked=True).where(AccessToken.app == api.model.id).execute()


def test_a_cached_token_costs_no_query(api, caplog, cache_seconds):
    cache_seconds(60)
    api.get(INSTANCES)  # read and remembered
    assert _token_queries(caplog, lambda: api.get(INSTANCES)) == 0


def test_without_the_cache_every_request_reads_the_token(api, caplog, cache_seconds):
    cache_seconds(0)
    api.get(INSTANCES)
    assert _token_queries(caplog, lambda: api.get(INSTANCES)) == 1
    _revoke_elsewhere(api)
    assert api.get(INSTANCES).status_code == 401


def test_a_revocation_elsewhere_takes_effect_within_the_bound(api, cache_seconds):
    bound = cache_seconds(1)
    assert api.get(INSTANCES).status_code == 200  # now cached
    _revoke_elsewhere(api)
    # Waited for as an outcome; the timeout is the configured bound plus the requests' time.
    wait_until(lambda: api.get(INSTANCES).status_code == 401, timeout=bound + 10,
               message="revoked token refused")


def test_revoking_in_this_process_takes_effect_at_once(api, http, cache_seconds):
    from helpers import basic

    cache_seconds(60)
    assert api.get(INSTANCES).status_code == 200
    assert http.post("/oauth2/revoke", data={"token": api.token},
                     headers={"Authorization": basic(api.client_id, api.secret)}
                     ).status_code == 200
    assert api.get(INSTANCES).status_code == 401
