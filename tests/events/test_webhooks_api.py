"""/api/v1/webhooks: registration, validation, secrets, isolation; fan-out, lanes, outcomes
and replay driven directly (no worker), so each rule is checked on its own."""

import datetime

import pytest
from helpers import LAMP

from thingbridge.db import db, utcnow
from thingbridge.models import WebhookDelivery, WebhookEndpoint
from thingbridge.outbox import webhook_signing, webhooks

HOOKS = "/api/v1/webhooks"
THINGS = "/api/v1/things"


def register(api, **body):
    resp = api.post(HOOKS, json={"url": "https://example.com/hook", **body})
    assert resp.status_code == 201, resp.json
    return resp.json


def test_register_shows_the_secret_once(api):
    hook = register(api, event_types=["thing.*"], description="backend")
    assert hook["secret"].startswith("whsec_") and hook["event_types"] == ["thing.*"]
    again = api.get(f"{HOOKS}/{hook['id']}").json
    assert "secret" not in again and again["url"] == "https://example.com/hook"
    assert [h["id"] for h in api.get(HOOKS).json] == [hook["id"]]
    assert all("secret" not in h for h in api.get(HOOKS).json)


def test_secret_is_encrypted_at_rest(api):
    hook = register(api)
    raw = db.execute_sql("SELECT secrets FROM webhook_endpoint WHERE id = %s",
                         (hook["id"],)).fetchone()[0]
    assert hook["secret"] not in raw and "whsec_" not in raw


@pytest.mark.parametrize("url", ["http://example.com/hook", "ftp://example.com/x", "not a url",
                                 "https://user:pw@example.com/x", ""])
def test_bad_urls_are_400(api, url):
    resp = api.post(HOOKS, json={"url": url})
    assert resp.status_code == 400 and resp.json["status"] == 400, resp.json


def test_plain_http_only_to_operator_opened_addresses(api, flask_app, monkeypatch):
    assert api.post(HOOKS, json={"url": "http://127.0.0.1:9/hook"}).status_code == 201
    monkeypatch.setitem(flask_app.config, "OUTBOUND_ALLOW", "")
    resp = api.post(HOOKS, json={"url": "http://127.0.0.1:9/hook"})
    assert resp.status_code == 400 and "public address" in resp.json["description"]


def test_unknown_event_types_are_400(api):
    resp = api.post(HOOKS, json={"url": "https://example.com/h", "event_types": ["thing.boom"]})
    assert resp.status_code == 400 and "thing.boom" in resp.json["description"]
    assert api.post(HOOKS, json={"url": "https://example.com/h",
                                 "event_types": []}).status_code == 400


def test_patch_and_delete(api):
    hook = register(api)
    resp = api.patch(f"{HOOKS}/{hook['id']}", json={"event_types": ["action.*"],
                                                     "url": "https://example.org/new"})
    assert resp.status_code == 200 and resp.json["url"] == "https://example.org/new"
    assert api.patch(f"{HOOKS}/{hook['id']}", json={"url": "http://x.org"}).status_code == 400
    assert api.delete(f"{HOOKS}/{hook['id']}").status_code == 204
    assert api.get(f"{HOOKS}/{hook['id']}").status_code == 404


def test_other_apps_get_404(api, make_app):
    hook = register(api)
    other = make_app("app-b")
    for method, path, body in [("GET", "", None), ("PATCH", "", {"description": "x"}),
                               ("DELETE", "", None), ("POST", "/rotate-secret", None),
                               ("GET", "/deliveries", None), ("POST", "/replay", {"after": 0})]:
        resp = other.request(method, f"{HOOKS}/{hook['id']}{path}", json=body)
        assert resp.status_code == 404, (method, path)
    assert other.get(HOOKS).json == []


def test_rotation_signs_with_both_secrets_for_the_overlap(api):
    hook = register(api)
    resp = api.post(f"{HOOKS}/{hook['id']}/rotate-secret")
    assert resp.status_code == 200
    new = resp.json["secret"]
    assert new != hook["secret"] and resp.json["previous_valid_until"]
    stored = WebhookEndpoint.get_by_id(hook["id"]).secrets
    body, now = b'{"id":1}', utcnow()
    headers = webhook_signing.headers(stored, "1", body, now)
    for secret in (new, hook["secret"]):
        assert webhook_signing.verify(secret, "1", headers["webhook-timestamp"],
                                      headers["webhook-signature"], body)
    later = now + datetime.timedelta(hours=25)
    headers = webhook_signing.headers(stored, "1", body, later)
    assert webhook_signing.verify(new, "1", headers["webhook-timestamp"],
                                  headers["webhook-signature"], body)
    assert not webhook_signing.verify(hook["secret"], "1", headers["webhook-timestamp"],
                                      headers["webhook-signature"], body)


def test_rotations_in_a_row_keep_the_newest_previous_secrets_only(api):
    """Every live secret signs every delivery: 300 rotations made a 14 kB signature header,
    which receivers refuse. The current secret and the newest earlier ones sign."""
    hook = register(api)
    secrets = [hook["secret"]] + [api.post(f"{HOOKS}/{hook['id']}/rotate-secret").json["secret"]
                                  for _ in range(webhook_signing.MAX_PREVIOUS + 3)]
    stored = WebhookEndpoint.get_by_id(hook["id"]).secrets
    headers = webhook_signing.headers(stored, "1", b"{}", utcnow())
    signing = [secret for secret in secrets if webhook_signing.verify(
        secret, "1", headers["webhook-timestamp"], headers["webhook-signature"], b"{}")]
    assert signing == secrets[-1 - webhook_signing.MAX_PREVIOUS:]
    assert len(headers["webhook-signature"]) < 300


def test_signature_rejects_tampering_and_stale_timestamps():
    secret = webhook_signing.new_secret()
    headers = webhook_signing.headers([{"secret": secret, "expires_at": None}], "7", b"{}",
                                      utcnow())
    ts, sig = headers["webhook-timestamp"], headers["webhook-signature"]
    assert webhook_signing.verify(secret, "7", ts, sig, b"{}")
    assert not webhook_signing.verify(secret, "7", ts, sig, b'{"x":1}')
    assert not webhook_signing.verify(secret, "8", ts, sig, b"{}")
    assert not webhook_signing.verify(secret, "7", ts, sig, b"{}", now=int(ts) + 3600)


def _deliveries(hook_id):
    return list(WebhookDelivery.select().where(WebhookDelivery.endpoint == hook_id)
                .order_by(WebhookDelivery.seq))


def test_fan_out_from_registration_on_with_type_filters(api, flask_app):
    api.post(THINGS, json=LAMP)  # before the endpoint existed: not delivered
    hook = register(api, event_types=["thing.deleted"])
    everything = register(api)
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    api.delete(f"{THINGS}/{thing_id}")
    assert webhooks.fan_out() == 3
    assert [d.seq for d in _deliveries(hook["id"])] == [3]
    assert [d.seq for d in _deliveries(everything["id"])] == [2, 3]
    assert webhooks.fan_out() == 0  # caught up


def test_one_lease_per_lane_and_lanes_per_subject(api, flask_app):
    hook = register(api)
    for subject in ("alice", "alice", "bob"):
        api.as_subject(subject).post(THINGS, json=LAMP)
    webhooks.fan_out()
    claimed = webhooks.claim_lanes()
    seqs = sorted(WebhookDelivery.get_by_id(d).seq for d, _ in claimed)
    assert seqs == [1, 3]  # alice's head and bob's head; alice's second waits
    assert webhooks.claim_lanes() == []  # both lanes are busy
    alice = next((d, t) for d, t in claimed if WebhookDelivery.get_by_id(d).lane == "alice")
    current = webhooks.leased(*alice)
    nxt = webhooks.record(current.delivery, alice[1], webhooks.Outcome(204, None, 3, ok=True))
    assert WebhookDelivery.get_by_id(nxt).seq == 2  # the holder goes on down its lane
    assert webhooks.leased(nxt, alice[1]) is not None
    assert _deliveries(hook["id"])[0].status == "DELIVERED"


def test_outcomes_retry_dead_letter_and_the_delivery_log(api, flask_app):
    hook = register(api)
    api.post(THINGS, json=LAMP)
    api.post(THINGS, json=LAMP)
    webhooks.fan_out()
    (first, token), = webhooks.claim_lanes()
    current = webhooks.leased(first, token)
    before = utcnow()
    assert webhooks.record(current.delivery, token, webhooks.Outcome(
        503, "answered 503", 12, retryable=True, retry_after=120)) is None
    row = WebhookDelivery.get_by_id(first)
    assert row.status == "PENDING" and row.attempts == 1 and row.lease_token is None
    assert row.next_attempt_at >= before + datetime.timedelta(seconds=119)
    assert webhooks.claim_lanes() == []  # not due yet, and the next one waits behind it

    WebhookDelivery.update(next_attempt_at=utcnow()).execute()
    (again, token), = webhooks.claim_lanes()
    assert again == first
    nxt = webhooks.record(webhooks.leased(again, token).delivery, token, webhooks.Outcome(
        410, "answered 410: gone", 5))  # not retryable: dead letter, the lane moves on
    assert WebhookDelivery.get_by_id(first).status == "DEAD" and nxt is not None

    page = api.get(f"{HOOKS}/{hook['id']}/deliveries?status=DEAD").json
    (dead,) = page["deliveries"]
    assert dead["event_id"] == 1 and dead["event_type"] == "thing.created"
    assert [a["status_code"] for a in dead["attempt_log"]] == [503, 410]
    assert dead["last_error"] == "answered 410: gone" and dead["finished_at"]
    assert api.get(f"{HOOKS}/{hook['id']}/deliveries?status=NOPE").status_code == 400

    resp = api.post(f"{HOOKS}/{hook['id']}/deliveries/{dead['id']}/redeliver")
    assert resp.status_code == 202 and resp.json["status"] == "PENDING"
    assert resp.json["event_id"] == 1
    conflict = api.post(f"{HOOKS}/{hook['id']}/deliveries/{resp.json['id']}/redeliver")
    assert conflict.status_code == 409


def test_give_up_after_max_age(api, flask_app):
    register(api)
    api.post(THINGS, json=LAMP)
    webhooks.fan_out()
    WebhookDelivery.update(created_at=utcnow() - datetime.timedelta(days=4)).execute()
    (delivery_id, token), = webhooks.claim_lanes()
    webhooks.record(webhooks.leased(delivery_id, token).delivery, token,
                    webhooks.Outcome(None, "unreachable", 1, retryable=True))
    assert WebhookDelivery.get_by_id(delivery_id).status == "DEAD"


def test_replay_from_a_cursor(api, flask_app):
    hook = register(api)
    for _ in range(3):
        api.post(THINGS, json=LAMP)
    webhooks.fan_out()
    WebhookDelivery.update(status="DELIVERED").execute()
    assert api.post(f"{HOOKS}/{hook['id']}/replay", json={"after": 9}).status_code == 400
    resp = api.post(f"{HOOKS}/{hook['id']}/replay", json={"after": 1})
    assert resp.status_code == 202 and resp.json == {"cursor": 1}
    webhooks.fan_out()
    pending = [d.seq for d in _deliveries(hook["id"]) if d.status == "PENDING"]
    assert pending == [2, 3]
    # Replaying again while those are queued does not queue them twice.
    api.post(f"{HOOKS}/{hook['id']}/replay", json={"after": 1})
    webhooks.fan_out()
    assert [d.seq for d in _deliveries(hook["id"]) if d.status == "PENDING"] == [2, 3]


def test_replay_past_retention_is_409(api, flask_app):
    from thingbridge.models import Event

    hook = register(api)
    for _ in range(3):
        api.post(THINGS, json=LAMP)
    Event.delete().where(Event.seq < 3).execute()
    resp = api.post(f"{HOOKS}/{hook['id']}/replay", json={"after": 0})
    assert resp.status_code == 409 and "retention" in resp.json["description"]
    assert api.post(f"{HOOKS}/{hook['id']}/replay", json={"after": 2}).status_code == 202


def test_webhooks_need_the_events_scope(make_app):
    limited = make_app("limited", token_scopes=["connctd.connector"])
    assert limited.get(HOOKS).status_code == 403


def test_out_of_range_ids_are_4xx_not_500(api):
    hook = register(api)
    huge = 2**64
    assert api.get(f"/api/v1/events?after={huge}").status_code == 400
    assert api.get(f"{HOOKS}/{hook['id']}/deliveries?after={huge}").status_code == 400
    assert api.get(f"{HOOKS}/{hook['id']}/deliveries?limit=%D9%A5").status_code == 400
    assert api.get(f"{HOOKS}/{hook['id']}/deliveries/{huge}").status_code == 404
    assert api.post(f"{HOOKS}/{hook['id']}/deliveries/{huge}/redeliver").status_code == 404
    assert api.post(f"{HOOKS}/{hook['id']}/replay", json={"after": huge}).status_code == 400


def test_patch_and_rotate_never_write_back_stale_columns(api, flask_app):
    hook = register(api)
    for _ in range(3):
        api.post(THINGS, json=LAMP)
    webhooks.fan_out()  # the cursor moves to 3 behind the API's back
    rotated = api.post(f"{HOOKS}/{hook['id']}/rotate-secret").json["secret"]
    resp = api.patch(f"{HOOKS}/{hook['id']}", json={"description": "renamed"})
    assert resp.json["cursor"] == 3 and resp.json["description"] == "renamed"
    stored = WebhookEndpoint.get_by_id(hook["id"])
    assert stored.cursor == 3 and stored.secrets[0]["secret"] == rotated
