"""The client lifecycle through the API alone: reauthorize and PATCH guarded like every client
route, what a client shows about its status, and configuration keys a connector does not know."""

import datetime
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from flows import CLIENTS, client_row, netatmo_instance, owm_client, owm_instance
from helpers import BROKER_URL

from thingbridge import tasks
from thingbridge.connectors import lifecycle
from thingbridge.db import utcnow
from thingbridge.models import ConnectorClient, ConnectorInstance, OAuthState
from thingbridge.schemas.common import ISO


@pytest.fixture
def netatmo_client(api, netatmo_sim):
    netatmo_instance(api)
    created = api.post(CLIENTS, json={"connector_type_id": "netatmo"})
    assert created.status_code == 303
    return created.json["client_id"]


def test_reauthorize_is_303_to_consent_with_a_fresh_state(api, netatmo_client):
    first = OAuthState.get().state_hash
    resp = api.post(f"{CLIENTS}/{netatmo_client}/reauthorize")
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/oauth2/authorize" and resp.json["href"] == resp.headers["Location"]
    assert parse_qs(location.query)["redirect_uri"] == [
        "http://localhost/api/v1/connectors/oauth/callback"]
    assert [s.state_hash for s in OAuthState.select()] != [first]
    assert OAuthState.select().count() == 1  # the earlier consent link stops working


def test_reauthorize_is_404_for_other_subjects_apps_and_ids(api, make_app, netatmo_client):
    path = f"{CLIENTS}/{netatmo_client}/reauthorize"
    other_app = make_app("app-b")
    netatmo_instance(other_app)
    for caller in (api.as_subject("bob"), other_app):
        resp = caller.post(path)
        assert resp.status_code == 404 and resp.json["error"] == "NOT_FOUND"
    assert api.post(f"{CLIENTS}/no-such-client/reauthorize").status_code == 404
    assert OAuthState.select().count() == 1


def test_reauthorize_needs_the_token_scope_and_subject(api, make_app, netatmo_client):
    path = f"{CLIENTS}/{netatmo_client}/reauthorize"
    assert api.as_subject(None).post(path).status_code == 400
    reader = make_app("reader", token_scopes=["connctd.things.read"])
    assert reader.post(path).status_code == 403
    assert api.http.post(path, headers={"X-External-Subject-Id": "alice"}).status_code == 401


def test_reauthorize_of_an_api_key_client_is_409(api, owm_sim):
    client_id = owm_client(api)
    resp = api.post(f"{CLIENTS}/{client_id}/reauthorize")
    assert resp.status_code == 409 and resp.json["error"] == "NOT_OAUTH"
    assert "PATCH" in resp.json["description"]


def test_a_client_shows_why_and_since_when(api, owm_sim):
    client_id = owm_client(api)
    shown = api.get(f"{CLIENTS}/{client_id}").json
    row = ConnectorClient.get_by_id(client_id)
    assert shown["status"] == "STARTING"
    assert shown["status_reason"] == "waiting for the first poll"
    assert shown["status_since"] == row.status_since.strftime(ISO)
    assert shown["next_poll_at"] == row.next_poll_at.strftime(ISO)
    assert shown["last_polled_at"] is None


def test_an_oauth_client_waits_for_consent(api, netatmo_client):
    shown = api.get(f"{CLIENTS}/{netatmo_client}").json
    assert shown["status_reason"] == "waiting for the end user's consent"
    assert shown["next_poll_at"] is None


def test_patch_validates_like_creation_and_changes_nothing_on_400(api, owm_sim):
    client_id = owm_client(api, city="Berlin")
    before = ConnectorClient.get_by_id(client_id)
    for configuration, needle in (({"lat": 95, "lon": 10}, "lat"),
                                  ({"city": "Berlin", "zip": "10115"}, "zip"),
                                  ({}, "location is required")):
        resp = api.patch(f"{CLIENTS}/{client_id}", json={"configuration": configuration})
        assert resp.status_code == 400 and resp.json["error"] == "INVALID_CONFIGURATION"
        assert needle in resp.json["description"]
    for body in ({}, {"configuration": "Berlin"}, {"configuration": {"city": "X"}, "more": 1}):
        assert api.patch(f"{CLIENTS}/{client_id}", json=body).status_code == 400
    after = ConnectorClient.get_by_id(client_id)
    assert (after.configuration, after.status_reason) == (
        before.configuration, before.status_reason)


def test_patch_is_404_for_other_subjects(api, owm_sim):
    client_id = owm_client(api)
    resp = api.as_subject("bob").patch(f"{CLIENTS}/{client_id}",
                                       json={"configuration": {"city": "Paris"}})
    assert resp.status_code == 404
    assert ConnectorClient.get_by_id(client_id).configuration == {"city": "Berlin"}


def test_unknown_configuration_keys_are_ignored_with_warnings(api, netatmo_sim):
    netatmo_instance(api)
    resp = api.post(CLIENTS, json={"connector_type_id": "netatmo",
                                   "configuration": {"anyField": "abc", "other": 1}})
    assert resp.status_code == 303
    assert resp.json["warnings"] == [
        "configuration.anyField: unknown netatmo client setting, ignored",
        "configuration.other: unknown netatmo client setting, ignored"]
    assert ConnectorClient.get_by_id(resp.json["client_id"]).configuration == {}
    patched = api.patch(f"{CLIENTS}/{resp.json['client_id']}",
                        json={"configuration": {"anyField": "x"}})
    assert patched.status_code == 200
    assert patched.json["warnings"] == [
        "configuration.anyField: unknown netatmo client setting, ignored"]


def test_unknown_instance_keys_are_ignored_with_warnings(api, owm_sim):
    from helpers import OWM_KEY

    resp = api.post("/api/v1/connectors/instances", json={
        "connector_type_id": "openweathermap",
        "configuration": {"app_key": OWM_KEY, "units": "imperial"}})
    assert resp.status_code == 201
    assert resp.json["warnings"] == [
        "configuration.units: unknown openweathermap instance setting, ignored"]
    assert ConnectorInstance.get_by_id(resp.json["id"]).configuration == {"app_key": OWM_KEY}


def test_a_connector_may_refuse_unknown_keys(api, owm_sim):
    """OpenWeatherMap declares its client configuration strict: a location key it does not
    read would poll a place the app did not mean."""
    owm_instance(api)
    resp = api.post(CLIENTS, json={"connector_type_id": "openweathermap",
                                   "configuration": {"city": "Berlin", "zip": "10115"}})
    assert resp.status_code == 400 and "zip" in resp.json["description"]


def test_a_poll_asked_for_while_a_poll_runs_is_kept(api, owm_sim, flask_app):
    """An action accepted while a poll runs asks for a poll to read the device's new state; the
    running poll may have read it before the action took effect, so its end must not push the
    asked-for poll back to the regular interval."""
    client_id = owm_client(api)
    ConnectorClient.update(status="STARTED", next_poll_at=utcnow()).where(
        ConnectorClient.id == client_id).execute()
    flask_app.extensions["celery"].control.purge()
    running = lifecycle.take(client_id, None)
    lifecycle.refresh_soon(client_row(client_id))
    asked = client_row(client_id).next_poll_at
    assert lifecycle.mark_polled(running)  # the running poll ends, nothing changed
    assert client_row(client_id).next_poll_at == asked
    assert client_row(client_id).lease_token is None
    polled = client_row(client_id)  # the next poll, with no refresh asked for meanwhile
    assert lifecycle.mark_polled(polled)
    assert client_row(client_id).next_poll_at > asked + datetime.timedelta(seconds=60)


def test_polls_after_a_burst_of_actions_are_one_poll_after_a_settle(api, owm_sim, flask_app):
    """Each accepted action asks for a poll to read the device's new state: the first makes the
    client due a settle from now and sends one poll for then; the burst's others find it
    coming."""
    client_id = owm_client(api)
    ConnectorClient.update(next_poll_at=utcnow() + datetime.timedelta(hours=1)).where(
        ConnectorClient.id == client_id).execute()  # polled, the next poll far off
    flask_app.extensions["celery"].control.purge()
    start = utcnow()
    for _ in range(3):
        lifecycle.refresh_soon(client_row(client_id))
    due = client_row(client_id).next_poll_at
    assert start + datetime.timedelta(seconds=lifecycle.REFRESH_SETTLE) <= due < (
        start + datetime.timedelta(hours=1))
    [sent] = [json.loads(m) for m in redis.Redis.from_url(BROKER_URL).lrange(tasks.POLL_QUEUE,
                                                                              0, -1)]
    assert sent["headers"]["task"] == lifecycle.POLL_TASK and sent["headers"]["eta"]


def test_refresh_after_an_action_on_both_databases(database, flask_app):
    """The refresh's statement is built once per database: on each, the first action makes a
    client polled far ahead due a settle from now, and the next finds that poll coming."""
    from thingbridge.models import App

    with flask_app.app_context():
        app, _ = App.register("refresh")
        instance = ConnectorInstance.create(app=app, type_id="openweathermap",
                                            configuration={"app_key": "k"})
        far = utcnow() + datetime.timedelta(hours=1)
        client = ConnectorClient.create(app=app, instance=instance, type_id="openweathermap",
                                        external_subject_id="alice", configuration={},
                                        next_poll_at=far)
        flask_app.extensions["celery"].control.purge()
        lifecycle.refresh_soon(client)
        due = ConnectorClient.get_by_id(client.id).next_poll_at
        assert due < far
        lifecycle.refresh_soon(client)
        assert ConnectorClient.get_by_id(client.id).next_poll_at == due
        flask_app.extensions["celery"].control.purge()
