"""A broken connection repaired in place, through the real API, a real worker and the Netatmo
simulator: revoke -> ERROR with its reason -> reauthorize -> consent -> the same client with the
same things STARTED again; a re-consent that fails keeps a grant that still works; a consent
never finished turns ERROR `consent not completed`; a bad configuration is fixed with PATCH."""

from __future__ import annotations

import datetime

import pytest
import requests
from flows import (
    ORIGIN,
    client_row,
    consent,
    owm_client,
    poll_due,
    reauthorize,
    repoll,
    sim_stats,
    wait_status,
)
from helpers import OTHER_KEY, OWM_KEY, wait_until

from thingbridge.db import utcnow
from thingbridge.models import ConnectorClient, OAuthState
from thingbridge.tasks import enqueue

CLIENTS = "/api/v1/connectors/clients"
REFUSED = "the provider refused the connector instance's configuration"
FIXED = "instance configuration changed; waiting for the first poll"
ALICE = "alice@example.com"


def _events(api, after=0) -> list[dict]:
    return api.get(f"/api/v1/events?after={after}&limit=1000").json["events"]


def _status_moves(api, client_id, after=0) -> list[tuple]:
    return [(e["data"]["old_status"], e["data"]["status"], e["data"]["status_reason"])
            for e in _events(api, after) if e["type"] == "connector.client.status_changed"
            and e["data"]["client_id"] == client_id]


def _started(api, client_id) -> dict:
    client = wait_status(client_id, "STARTED")
    shown = api.get(f"{CLIENTS}/{client_id}").json
    assert shown["mappings"], shown
    return {"row": client, "shown": shown}


def test_revoked_grant_is_repaired_in_place_with_the_same_things(api, netatmo_sim,
                                                                 start_worker):
    start_worker()
    client_id = consent(api, login=ALICE)["client_id"]
    before = _started(api, client_id)["shown"]
    thing_ids = {m["thing_id"] for m in before["mappings"]}
    mark = _events(api)[-1]["id"]

    requests.post(f"{netatmo_sim}/_sim/revoke", timeout=5)
    repoll(client_id)
    wait_status(client_id, "ERROR")
    broken = api.get(f"{CLIENTS}/{client_id}").json
    assert broken["status_reason"] == "reauthorization required"
    assert broken["next_poll_at"] is None
    assert broken["status_since"] > before["status_since"]
    assert broken["last_polled_at"] > before["last_polled_at"]
    assert _status_moves(api, client_id, mark) == [
        ("STARTED", "ERROR", "reauthorization required")]

    landed = reauthorize(api, client_id, login=ALICE)
    assert landed == {"client_id": client_id, "status": "STARTING"}
    wait_until(lambda: api.get(f"{CLIENTS}/{client_id}").json["status"] == "STARTED",
               message="STARTED again")
    after = api.get(f"{CLIENTS}/{client_id}").json
    assert after["mappings"] == before["mappings"]
    assert {t["id"] for t in api.get("/api/v1/things?expand=components").json} == thing_ids
    assert after["status_reason"] is None and after["next_poll_at"]
    assert _status_moves(api, client_id, mark) == [
        ("STARTED", "ERROR", "reauthorization required"),
        ("ERROR", "STARTING", "consent given; waiting for the first poll"),
        ("STARTING", "STARTED", None)]
    # The things' history is the same history: nothing was deleted or created again.
    later = {e["type"] for e in _events(api, mark)}
    assert not later & {"thing.created", "thing.deleted", "connector.client.deleted"}



def _refused_while_reauthorized(api, netatmo_sim, client_id: str, monkeypatch) -> None:
    """The grant revoked, a poll refused, and the end user reauthorizing while the refusal is
    being recorded: the poll says "retry"."""
    from thingbridge.connectors import lifecycle

    requests.post(f"{netatmo_sim}/_sim/revoke", timeout=5)
    record = lifecycle.record_error

    def reauthorized_meanwhile(client, exc):
        assert reauthorize(api, client_id, login=ALICE)["status"] == "STARTING"
        return record(client, exc)

    monkeypatch.setattr(lifecycle, "record_error", reauthorized_meanwhile)
    assert poll_due(client_id) == "retry"
    monkeypatch.undo()


def test_a_reauthorization_made_while_a_poll_is_refused_stops_nothing(api, netatmo_sim,
                                                                      monkeypatch):
    """The end user reauthorizes (their grant was revoked) while a poll with the old grant
    is being refused: the refusal, recorded after the new grant was stored, does not stop
    the client the reauthorization just started again; it is polled again at once."""
    from thingbridge_workers.polling import poll

    client_id = consent(api, login=ALICE)["client_id"]
    assert poll_due(client_id) == "ok"
    _refused_while_reauthorized(api, netatmo_sim, client_id, monkeypatch)
    client = client_row(client_id)
    assert (client.status, client.next_poll_at <= utcnow()) == ("STARTING", True)
    assert poll(client_id) == "ok" and client_row(client_id).status == "STARTED"


def test_a_reauthorization_during_the_first_poll_stops_nothing(api, netatmo_sim, monkeypatch):
    """The same during the client's first poll: the consent leaves it STARTING as it was, so
    only the grant's own time tells the new grant from the refused one."""
    client_id = consent(api, login=ALICE)["client_id"]
    first = client_row(client_id)
    assert (first.status, first.granted_at is not None) == ("STARTING", True)
    _refused_while_reauthorized(api, netatmo_sim, client_id, monkeypatch)
    client = client_row(client_id)
    assert client.status == "STARTING" and client.granted_at > first.granted_at
    assert poll_due(client_id) == "ok" and client_row(client_id).status == "STARTED"


def test_a_poll_that_refreshed_its_own_token_records_its_refusal(api, netatmo_sim,
                                                                 monkeypatch):
    """The tokens a poll refreshed itself are not someone else's reauthorization: its
    refusal is recorded (ERROR), not taken for stale and polled again (which, with tokens
    refreshed at every poll, would poll it again at every dispatch for ever)."""
    from thingbridge.connectors.contract import ConfigError
    from thingbridge_netatmo.connector import NetatmoConnector

    client_id = consent(api, login=ALICE)["client_id"]
    assert poll_due(client_id) == "ok"
    ConnectorClient.update(token_expires_at=utcnow()).where(
        ConnectorClient.id == client_id).execute()  # the next poll refreshes first
    before = client_row(client_id).tokens

    def refused(self, ctx):
        raise ConfigError("home not found")

    monkeypatch.setattr(NetatmoConnector, "fetch", refused)
    assert poll_due(client_id) == "error"
    client = client_row(client_id)
    assert client.tokens != before  # refreshed by this poll
    assert (client.status, client.status_reason) == ("ERROR", "home not found")


def test_a_refusal_after_another_process_refreshed_the_tokens_is_recorded(api, netatmo_sim,
                                                                          monkeypatch):
    """Another process (an action's delivery) refreshed the client's tokens while a poll was
    refused: that is no new grant (the client was not started again), so the refusal stands.
    Counted as a change, it would poll the client again at once for as long as others keep
    refreshing."""
    from thingbridge.connectors import lifecycle
    from thingbridge.connectors.contract import ConfigError
    from thingbridge_netatmo.connector import NetatmoConnector

    client_id = consent(api, login=ALICE)["client_id"]
    assert poll_due(client_id) == "ok"
    record = lifecycle.record_error

    def refreshed_meanwhile(client, exc):
        tokens = {**client.tokens, "access_token": "refreshed-elsewhere"}
        ConnectorClient.update(tokens=tokens).where(ConnectorClient.id == client_id).execute()
        return record(client, exc)

    def refused(self, ctx):
        raise ConfigError("home not found")

    monkeypatch.setattr(NetatmoConnector, "fetch", refused)
    monkeypatch.setattr(lifecycle, "record_error", refreshed_meanwhile)
    assert poll_due(client_id) == "error"
    assert client_row(client_id).status == "ERROR"


def test_a_new_grant_stored_while_waiting_for_the_refresh_lock_is_used(api, netatmo_sim):
    """A refresh that finds, once it holds the client's lock, a new access token stored
    meanwhile (a reauthorization; a provider may issue no refresh token) uses it, rather than
    say the grant is gone because that one has no refresh token."""
    from thingbridge.connectors import oauth
    from thingbridge.connectors.registry import build_connector

    client_id = consent(api, login=ALICE)["client_id"]
    stale = client_row(client_id)
    stale.token_expires_at = utcnow()  # what the caller read: due for a refresh
    ConnectorClient.update(tokens={"access_token": "new-grant"},
                           token_expires_at=utcnow() + datetime.timedelta(hours=1)).where(
        ConnectorClient.id == client_id).execute()
    token = oauth.access_token(client_id, build_connector("netatmo"),
                               stale.instance.configuration, client=stale)
    assert token == "new-grant" and stale.tokens == {"access_token": "new-grant"}

def test_a_refresh_for_a_client_deleted_meanwhile_says_so(api, netatmo_sim):
    """The app deleted the client while its poll or action was on its way to a refresh: a
    connector error (the poll records nothing, the action fails), not an unexpected one."""
    from thingbridge.connectors import oauth
    from thingbridge.connectors.contract import ConfigError
    from thingbridge.connectors.registry import build_connector

    client_id = consent(api, login=ALICE)["client_id"]
    stale = client_row(client_id)
    stale.token_expires_at = utcnow()  # what the caller read: due for a refresh
    ConnectorClient.delete().where(ConnectorClient.id == client_id).execute()
    with pytest.raises(ConfigError, match="the connector client was deleted"):
        oauth.access_token(client_id, build_connector("netatmo"), stale.instance.configuration,
                           client=stale)


def test_a_denied_reauthorization_keeps_the_grant_that_still_works(api, netatmo_sim,
                                                                   start_worker):
    start_worker()
    client_id = consent(api, login=ALICE)["client_id"]
    tokens = _started(api, client_id)["row"].tokens

    landed = reauthorize(api, client_id, decision="deny", login=ALICE)
    assert landed == {"client_id": client_id, "status": "STARTED", "error": "access_denied"}
    assert client_row(client_id).tokens == tokens
    assert client_row(client_id).status == "STARTED"
    stamp = client_row(client_id).last_success_at
    repoll(client_id)
    wait_until(lambda: client_row(client_id).last_success_at > stamp,
               message="a poll with the old grant")
    assert client_row(client_id).status == "STARTED"


def test_a_denied_reauthorization_of_a_broken_client_says_why(api, netatmo_sim, start_worker):
    start_worker()
    client_id = consent(api, login=ALICE)["client_id"]
    wait_status(client_id, "STARTED")
    requests.post(f"{netatmo_sim}/_sim/revoke", timeout=5)
    repoll(client_id)
    wait_status(client_id, "ERROR")

    landed = reauthorize(api, client_id, decision="deny", login=ALICE)
    assert landed["status"] == "ERROR" and landed["error"] == "access_denied"
    client = client_row(client_id)
    assert client.status == "ERROR"
    assert client.status_reason == "consent not given: access_denied"


def test_an_unfinished_consent_turns_error_and_can_be_reauthorized(api, netatmo_sim,
                                                                   start_worker):
    from flows import netatmo_instance

    start_worker()
    netatmo_instance(api)
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    assert created.status_code == 303
    client_id = created.json["client_id"]
    waiting = api.get(f"{CLIENTS}/{client_id}").json
    assert waiting["status"] == "STARTING"
    assert waiting["status_reason"] == "waiting for the end user's consent"

    # The end user closed the tab: the consent's time runs out.
    OAuthState.update(expires_at=utcnow()).where(OAuthState.client == client_id).execute()
    enqueue("thingbridge.expire_consents")
    client = wait_status(client_id, "ERROR")
    assert client.status_reason == "consent not completed"
    assert not OAuthState.select().where(OAuthState.client == client_id).exists()
    assert _status_moves(api, client_id) == [("STARTING", "ERROR", "consent not completed")]

    assert reauthorize(api, client_id)["status"] == "STARTING"
    wait_status(client_id, "STARTED")


def test_the_sweep_leaves_consents_under_way_and_granted_clients_alone(api, netatmo_sim,
                                                                       start_worker):
    from flows import netatmo_instance

    start_worker()
    client_id = consent(api)["client_id"]
    wait_status(client_id, "STARTED")
    netatmo_instance(api)
    pending = api.as_subject("bob").post(CLIENTS, json={"connector_type_id": "netatmo"})
    assert pending.status_code == 303
    # Another subject's consent has run out: only that client moves.
    carol = api.as_subject("carol").post(CLIENTS, json={"connector_type_id": "netatmo"})
    OAuthState.update(expires_at=utcnow()).where(
        OAuthState.client == carol.json["client_id"]).execute()

    enqueue("thingbridge.expire_consents")
    wait_status(carol.json["client_id"], "ERROR")
    assert client_row(pending.json["client_id"]).status == "STARTING"
    assert client_row(client_id).status == "STARTED"
    assert OAuthState.select().where(OAuthState.client == pending.json["client_id"]).exists()


def test_a_bad_location_is_fixed_in_place_with_patch(api, owm_sim, start_worker):
    start_worker()
    client_id = owm_client(api, city="Atlantis")
    client = wait_status(client_id, "ERROR")
    assert "location not found" in client.status_reason

    resp = api.patch(f"{CLIENTS}/{client_id}", json={"configuration": {"city": "Berlin"}})
    assert resp.status_code == 200, resp.json
    assert resp.json["id"] == client_id and resp.json["status"] == "STARTING"
    assert resp.json["status_reason"] == "configuration changed; waiting for the first poll"
    assert "warnings" not in resp.json
    wait_status(client_id, "STARTED")
    shown = api.get(f"{CLIENTS}/{client_id}").json
    assert len(shown["mappings"]) == 1 and shown["status_reason"] is None
    moves = _status_moves(api, client_id)
    assert moves[-2:] == [
        ("ERROR", "STARTING", "configuration changed; waiting for the first poll"),
        ("STARTING", "STARTED", None)]


def _expire_tokens(netatmo_sim) -> None:
    """Every access token expired, at the provider and in our rows: the next poll refreshes."""
    requests.post(f"{netatmo_sim}/_sim/expire_tokens", timeout=5)
    ConnectorClient.update(token_expires_at=utcnow()).execute()


def test_a_rotated_app_secret_is_fixed_once_on_the_instance(api, netatmo_sim, start_worker):
    """The app's OAuth client secret is rotated at Netatmo: every refresh answers
    invalid_client. Each client says the instance must be fixed (not the end user's consent,
    which could not be exchanged either), and PATCHing the instance with the new secret starts
    them again with the grants they had: no end user involved. A client whose own grant was
    revoked stays as it was. Before, each said `reauthorization required`, a reauthorization
    failed the same way, and nothing but deleting every client could repair the instance."""
    start_worker()
    subjects = {name: api.as_subject(name) for name in ("alice", "bob", "carol")}
    ids = {name: consent(sub, login=name)["client_id"] for name, sub in subjects.items()}
    before = {name: _started(sub, ids[name])["shown"] for name, sub in subjects.items()}
    requests.post(f"{netatmo_sim}/_sim/revoke", json={"login": "carol"}, timeout=5)
    repoll(ids["carol"])
    assert wait_status(ids["carol"], "ERROR").status_reason == "reauthorization required"
    mark = _events(api)[-1]["id"]

    requests.post(f"{netatmo_sim}/_sim/clients", json={"client_id": "thingbridge-demo",
                                                       "client_secret": "rotated"}, timeout=5)
    _expire_tokens(netatmo_sim)
    calls = sim_stats(netatmo_sim)["token"]
    for name in ("alice", "bob"):
        repoll(ids[name])
    for name in ("alice", "bob"):
        broken = wait_status(ids[name], "ERROR")
        assert broken.status_reason.startswith(REFUSED), broken.status_reason
        assert "invalid_client" in broken.status_reason and broken.next_poll_at is None
        assert subjects[name].get(f"{CLIENTS}/{ids[name]}").json["status_reason"] == (
            broken.status_reason)
    assert sim_stats(netatmo_sim)["token"] == calls + 2
    # A reauthorization cannot help, and says why.
    landed = reauthorize(subjects["alice"], ids["alice"], login="alice")
    assert landed["status"] == "ERROR" and landed["error"] == "token_exchange_failed"
    assert client_row(ids["alice"]).status_reason.startswith(REFUSED)

    instance = client_row(ids["alice"]).instance_id
    path = f"/api/v1/connectors/instances/{instance}"
    configuration = {"client_id": "thingbridge-demo", "client_secret": "still-wrong",
                     "origin_callback_uri": ORIGIN}
    refused = api.patch(path, json={"configuration": configuration})
    assert refused.status_code == 400 and refused.json["error"] == "INVALID_CONFIGURATION"
    assert client_row(ids["bob"]).status == "ERROR"

    fixed = api.patch(path, json={"configuration": {**configuration,
                                                    "client_secret": "rotated"}})
    assert fixed.status_code == 200, fixed.json
    assert fixed.json["id"] == instance and len(fixed.json["clients"]) == 3
    for name in ("alice", "bob"):
        wait_status(ids[name], "STARTED")
        after = subjects[name].get(f"{CLIENTS}/{ids[name]}").json
        assert after["mappings"] == before[name]["mappings"] and after["status_reason"] is None
        assert _status_moves(api, ids[name], mark)[-2:] == [
            ("ERROR", "STARTING", FIXED), ("STARTING", "STARTED", None)]
    assert client_row(ids["carol"]).status_reason == "reauthorization required"
    assert _status_moves(api, ids["carol"], mark) == []
    assert sim_stats(netatmo_sim)["users"] == 3


def test_a_revoked_app_key_is_fixed_once_on_the_instance(api, owm_sim, start_worker):
    """OpenWeatherMap's 401 (the app key revoked) is the instance's: PATCHing it with a key
    that works starts its clients again; one stopped by its own configuration (a location
    OpenWeatherMap does not know) stays stopped."""
    start_worker()
    berlin = owm_client(api)
    wait_status(berlin, "STARTED")
    atlantis = owm_client(api.as_subject("bob"), city="Atlantis")
    assert "location not found" in wait_status(atlantis, "ERROR").status_reason
    requests.post(f"{owm_sim}/_sim/control", json={"revoked_keys": [OWM_KEY]}, timeout=5)
    repoll(berlin)
    broken = wait_status(berlin, "ERROR")
    assert broken.status_reason.startswith(REFUSED), broken.status_reason
    assert "invalid OpenWeatherMap app key" in broken.status_reason

    path = f"/api/v1/connectors/instances/{broken.instance_id}"
    assert api.patch(path, json={"configuration": {"app_key": OWM_KEY}}).status_code == 400
    fixed = api.patch(path, json={"configuration": {"app_key": OTHER_KEY}})
    assert fixed.status_code == 200, fixed.json
    wait_status(berlin, "STARTED")
    assert "location not found" in client_row(atlantis).status_reason
    assert client_row(atlantis).status == "ERROR"
