"""PATCH on an instance whose configuration the provider refused: the clients the refusal
stopped start again in the transaction that stores the new configuration, however many they
are. The statements it sends do not grow with them, each gets its one status_changed event,
and clients stopped for another reason (or never granted) stay as they are."""

import random
import sqlite3

import psycopg
import pytest
from flows import ORIGIN, netatmo_instance
from helpers import DATABASE_URL, OTHER_KEY, OWM_KEY, Statements

from thingbridge import tasks
from thingbridge.connectors import lifecycle
from thingbridge.db import db, utcnow
from thingbridge.models import App, ConnectorClient, ConnectorInstance, Event, EventCounter
from thingbridge.outbox import events

INSTANCES = "/api/v1/connectors/instances"
REFUSED = f"{lifecycle.INSTANCE_REFUSED}: invalid OpenWeatherMap app key"


def _clients(app_id, instance_id, count, status="ERROR", reason=REFUSED, tokens=None,
             type_id="openweathermap", prefix="u"):
    """``count`` clients of the instance, as a poll left them; their ids."""
    now = utcnow()
    rows = [dict(id=f"{prefix}{i:05d}", app=app_id, instance=instance_id,
                 type_id=type_id, external_subject_id=f"{prefix}-subject-{i}",
                 configuration={"city": "Berlin"}, tokens=tokens, status=status,
                 status_reason=reason, status_since=now, failure_count=3, next_poll_at=None,
                 created_at=now, updated_at=now) for i in range(count)]
    ids = [row["id"] for row in rows]
    random.Random(count).shuffle(rows)  # stored in no particular order, as UUIDs are
    ConnectorClient.insert_many(rows).execute()
    return ids


def _owm(api) -> str:
    assert api.post(INSTANCES, json={"connector_type_id": "openweathermap",
                                     "configuration": {"app_key": OWM_KEY}}).status_code == 201
    return ConnectorInstance.get(ConnectorInstance.app == api.model.id).id


@pytest.fixture
def sends(monkeypatch):
    """The clients whose polls were sent after the commit (the broker is real: they are sent
    too)."""
    sent = []
    enqueue = tasks.enqueue_polls_soon

    def spy(task_name, arg_lists):
        sent.extend(args[0] for args in arg_lists)
        return enqueue(task_name, arg_lists)

    monkeypatch.setattr(lifecycle, "enqueue_polls_soon", spy)
    return sent


def _patch(api, instance_id) -> tuple[dict, int, int]:
    """The answer, and how many statements and transactions the PATCH sent."""
    with pytest.MonkeyPatch.context() as counting:
        statements = Statements(counting)
        resp = api.patch(f"{INSTANCES}/{instance_id}",
                         json={"configuration": {"app_key": OTHER_KEY}})
    assert resp.status_code == 200, resp.json
    return resp.json, len(statements.sql), statements.transactions


def test_every_refused_client_starts_again_in_one_transaction(api, make_app, sends,
                                                              flask_app, monkeypatch):
    monkeypatch.setitem(flask_app.config, "DISPATCH_BATCH", 300)
    few, many = api, make_app("many")
    few_ids = _clients(few.model.id, _owm(few), 3, prefix="f")
    instance = _owm(many)
    refused = _clients(many.model.id, instance, 400)
    own_error = _clients(many.model.id, instance, 5, reason="location not found: Atlantis",
                         prefix="o")
    started = _clients(many.model.id, instance, 5, status="STARTED", reason=None, prefix="s")
    after = Event.select().count()

    _, *small = _patch(few, ConnectorInstance.get(ConnectorInstance.app == few.model.id).id)
    shown, *large = _patch(many, instance)

    assert large == small and small[1] == 1
    assert len(shown["clients"]) == 410
    restarted = ConnectorClient.select().where(ConnectorClient.id.in_(few_ids + refused))
    for client in restarted:
        assert (client.status, client.status_reason, client.failure_count) == (
            "STARTING", lifecycle.INSTANCE_FIXED, 0)
        assert client.next_poll_at is not None
        assert client.status_since == client.updated_at == client.next_poll_at
    for client_id, status, reason in ((own_error[0], "ERROR", "location not found: Atlantis"),
                                      (started[0], "STARTED", None)):
        client = ConnectorClient.get_by_id(client_id)
        assert (client.status, client.status_reason, client.failure_count) == (
            status, reason, 3)
    said = list(Event.select().where(Event.type == "connector.client.status_changed"))
    assert Event.select().count() - after == len(said) == len(few_ids) + len(refused)
    assert {e.data["client_id"] for e in said} == set(few_ids + refused)
    for event in said:
        client_id = event.data["client_id"]
        assert event.external_subject_id == f"{client_id[0]}-subject-{int(client_id[1:])}"
        assert event.data == {"client_id": client_id, "connector_type_id": "openweathermap",
                              "old_status": "ERROR", "status": "STARTING",
                              "status_reason": lifecycle.INSTANCE_FIXED}
    # After each commit, as many as the dispatcher sends at a time, in the order of ids.
    assert sends == few_ids + refused[:300]


def test_an_oauth_client_never_granted_still_needs_its_consent(api, sends, monkeypatch):
    netatmo_instance(api)
    instance = ConnectorInstance.get(ConnectorInstance.app == api.model.id)
    netatmo = dict(type_id="netatmo", reason=f"{lifecycle.INSTANCE_REFUSED}: invalid_client")
    granted = _clients(api.model.id, instance.id, 2, tokens={"access_token": "a"}, **netatmo)
    never = _clients(api.model.id, instance.id, 2, prefix="n", **netatmo)

    statements = Statements(monkeypatch)
    resp = api.patch(f"{INSTANCES}/{instance.id}", json={"configuration": {
        "client_id": "thingbridge-demo", "client_secret": "demo-secret",
        "origin_callback_uri": ORIGIN}})
    assert resp.status_code == 200, resp.json
    assert statements.transactions == 1
    assert [ConnectorClient.get_by_id(i).status for i in granted + never] == [
        "STARTING", "STARTING", "ERROR", "ERROR"]
    assert sends == granted


def test_a_repeated_patch_restarts_nothing_twice(api, sends):
    instance = _owm(api)
    refused = _clients(api.model.id, instance, 3)
    _patch(api, instance)
    after = Event.select().count()
    _patch(api, instance)
    assert Event.select().count() == after
    assert sends == refused


def test_the_restart_on_both_databases(database, flask_app, sends, monkeypatch):
    with flask_app.app_context():
        app, _ = App.register("repair")
        instance = ConnectorInstance.create(app=app, type_id="openweathermap",
                                            configuration={"app_key": OWM_KEY})
        refused = _clients(app.id, instance.id, 20)
        if database == "sqlite":  # a build that takes few parameters: the events in parts
            db.connection().setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)
            monkeypatch.setattr(events, "SQLITE_ROWS", 7)
        lifecycle.reconfigure_instance(instance, {"app_key": OTHER_KEY})
        assert ConnectorInstance.get_by_id(instance.id).configuration == {"app_key": OTHER_KEY}
        assert {c.status for c in ConnectorClient.select()} == {"STARTING"}
        said = list(Event.select().order_by(Event.seq))
        assert [e.seq for e in said] == list(range(1, 21))
        assert [e.data["client_id"] for e in said] == refused  # in the order of ids
        assert sends == refused


def test_a_failure_on_the_way_writes_nothing(api, sends):
    """The configuration, the restarts and their events are one transaction: the database
    giving up at the events (a lock held elsewhere past the statement timeout) leaves the old
    configuration and every client stopped, and the answer says nothing was written."""
    instance = _owm(api)
    refused = _clients(api.model.id, instance, 3)
    stored = ConnectorInstance.get_by_id(instance).configuration
    with psycopg.connect(DATABASE_URL) as other:
        other.execute(f"LOCK TABLE {EventCounter._meta.table_name} IN EXCLUSIVE MODE")
        db.execute_sql("SET statement_timeout = '300ms'")
        try:
            resp = api.patch(f"{INSTANCES}/{instance}",
                             json={"configuration": {"app_key": OTHER_KEY}})
        finally:
            db.execute_sql("SET statement_timeout = 0")
    assert resp.status_code == 503 and resp.json["error"] == "DATABASE_BUSY", resp.json
    assert ConnectorInstance.get_by_id(instance).configuration == stored
    assert {ConnectorClient.get_by_id(i).status for i in refused} == {"ERROR"}
    assert sends == []
