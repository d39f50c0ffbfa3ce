"""A broken connection repaired in place, through the real API, a real worker and the Netatmo
simulator: revoke -> ERROR with its reason -> reauthorize -> consent -> the same client with the
same things STARTED again; a re-consent that fails keeps a grant that still works; a consent
never finished turns ERROR `consent not completed`; a bad configuration is fixed with PATCH."""

from __future__ import annotations

import requests
from flows import (
    client_row,
    consent,
    owm_client,
    reauthorize,
    repoll,
    wait_status,
)
from helpers import wait_until

from thingbridge.db import utcnow
from thingbridge.models import OAuthState
from thingbridge.tasks import enqueue

CLIENTS = "/api/v1/connectors/clients"
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
