"""The poll's write path (things.sync + poll_sql) on both databases it runs on: PostgreSQL (arrays,
one statement) and SQLite, the embedded default (per-row statements)."""

import datetime

import psycopg
import pytest
from helpers import Statements, sync_things, waiting_on

from thingbridge.connectors import lifecycle
from thingbridge.connectors.contract import ComponentSpec, PropertySpec, ThingSpec
from thingbridge.db import db, utcnow
from thingbridge.models import (
    App,
    Component,
    ConnectorClient,
    ConnectorInstance,
    Property,
    Thing,
)
from thingbridge.outbox import events
from thingbridge.things import poll_sql, sync


def _client(name="station-app") -> ConnectorClient:
    app, _ = App.register(name)
    instance = ConnectorInstance.create(app=app, type_id="openweathermap",
                                        configuration={"app_key": "k" * 32})
    return ConnectorClient.create(app=app, instance=instance, type_id="openweathermap",
                                  external_subject_id="alice", configuration={"city": "Berlin"},
                                  tokens={"access_token": "secret"})


def _spec(temp="20.5", humidity="50", name="Station", wind=False) -> ThingSpec:
    components = [ComponentSpec("climate", properties=[
        PropertySpec("temperature", temp, unit="°C"), PropertySpec("humidity", humidity)])]
    if wind:
        components.append(ComponentSpec("wind", properties=[PropertySpec("speed", "3")]))
    return ThingSpec("station-1", name, "climate", components)


def _feed(client):
    return [(e.type, e.data) for e in events.read_after(client.app_id, 0, 100)]


def _values(client) -> dict:
    return dict(Property.select(Property.property_id, Property.value).join(Component)
                .join(Thing).where(Thing.connector_client == client).tuples())


def test_take_client_decrypts_holds_and_mark_polled_releases(database):
    client = _client()
    now = utcnow()
    later = now + datetime.timedelta(seconds=60)
    assert poll_sql.take_client(client.id, "token-a", now, later) is None  # not due
    ConnectorClient.update(next_poll_at=now).where(ConnectorClient.id == client.id).execute()
    loaded = poll_sql.take_client(client.id, "token-a", now, later)
    assert loaded.instance.configuration == {"app_key": "k" * 32}
    assert loaded.tokens == {"access_token": "secret"}
    assert loaded.configuration == {"city": "Berlin"} and loaded.status == "STARTING"
    assert loaded.app_id == client.app_id and loaded.created_at == client.created_at
    assert loaded.instance.created_at == client.instance.created_at
    assert loaded.instance.type_id == "openweathermap"
    assert (loaded.lease_token, loaded.leased_until) == ("token-a", later)
    assert poll_sql.take_client(client.id, "token-b", now, later) is None  # held by a
    assert poll_sql.take_client(client.id, "token-a", now, later) is not None  # its own
    assert poll_sql.take_client(client.id, "token-b", later, later) is not None  # ran out
    assert poll_sql.take_client("no-such-client", "token-a", now, later) is None
    assert not poll_sql.mark_polled(client.id, "STARTED", now, now, loaded.next_poll_at)  # STARTING
    ConnectorClient.update(status="STARTED", failure_count=3).where(
        ConnectorClient.id == client.id).execute()
    assert poll_sql.mark_polled(client.id, "STARTED", now, now, loaded.next_poll_at)
    row = ConnectorClient.get_by_id(client.id)
    assert (row.failure_count, row.last_success_at, row.next_poll_at) == (0, now, now)
    assert (row.lease_token, row.leased_until) == (None, None)
    sooner = now + datetime.timedelta(seconds=1)  # a poll asked for while the poll ran
    ConnectorClient.update(next_poll_at=sooner).where(ConnectorClient.id == client.id).execute()
    assert poll_sql.mark_polled(client.id, "STARTED", now, later, now)
    assert ConnectorClient.get_by_id(client.id).next_poll_at == sooner


def _types(said) -> list[str]:
    return [e.type for e in said]


def test_only_what_changed_is_written_and_told(database):
    client = _client()
    assert _types(sync_things(client, [_spec()])) == ["thing.created"]
    assert sync.plan(sync.read_stored(client.id), [_spec()]).empty  # steady: nothing to write
    assert sync_things(client, [_spec()]) == []
    assert _types(sync_things(client, [_spec(temp="21.0")])) == ["thing.property_changed"]
    assert _values(client) == {"temperature": "21.0", "humidity": "50"}
    sync_things(client, [_spec(temp="21.0", name="Garden", wind=True)])  # structural
    sync_things(client, [_spec(temp="21.5", name="Garden")])  # wind goes, value changes
    sync_things(client, [])
    feed = _feed(client)
    assert [t for t, _ in feed] == ["thing.created", "thing.property_changed", "thing.updated",
                                    "thing.updated", "thing.property_changed", "thing.deleted"]
    changed = feed[1][1]
    assert (changed["oldValue"], changed["newValue"], changed["componentId"]) == (
        "20.5", "21.0", "climate") and changed["lastUpdate"].endswith("Z")
    assert feed[2][1]["name"] == "Garden"
    assert [e.seq for e in events.read_after(client.app_id, 0, 100)] == [1, 2, 3, 4, 5, 6]
    assert Thing.select().where(Thing.connector_client == client).count() == 0


def test_a_value_changed_since_the_read_is_reread_not_overwritten_blindly(database):
    client = _client()
    sync_things(client, [_spec()])
    plan = sync.plan(sync.read_stored(client.id), [_spec(temp="22.0", humidity="55")])
    assert not plan.structural and len(plan.values) == 2
    # Another writer (a stale poll of the client, past its lease) writes both after our read:
    # temperature to something else, humidity to exactly our new reading.
    Property.update(value="30.0").where(Property.property_id == "temperature").execute()
    Property.update(value="55").where(Property.property_id == "humidity").execute()
    with db.atomic():
        said = sync.apply(client, plan)
    assert [(e.data["propertyId"], e.data["oldValue"], e.data["newValue"])
            for e in said] == [("temperature", "30.0", "22.0")]
    assert _values(client) == {"temperature": "22.0", "humidity": "55"}


def test_apply_commits_only_with_its_caller(database):
    """apply writes inside the caller's transaction and commits nothing itself: the poll's
    status, things and events commit together or not at all."""
    client = _client()
    sync_things(client, [_spec()])
    plan = sync.plan(sync.read_stored(client.id), [_spec(temp="25.0", name="Garden")])
    with pytest.raises(RuntimeError), db.atomic():
        said = sync.apply(client, plan)
        events.emit_many(client.app_id, said)
        raise RuntimeError("recording the poll failed")
    assert _values(client)["temperature"] == "20.5"
    assert Thing.get(Thing.connector_client == client).name == "Station"
    assert [t for t, _ in _feed(client)] == ["thing.created"]


def test_event_data_is_stored_as_the_text_it_was_given(database):
    """NUL, a lone surrogate and astral characters are valid in JSON text; the outbox must
    take them (an action parameter can carry any of them) and give them back unchanged."""
    client = _client()
    data = {"value": "a\u0000b", "odd": "\ud800", "unit": "°C 🌡", "nested": {"n": [1, None]}}
    with db.atomic():
        events.emit(client.app_id, "thing.updated", "alice", data)
    assert _feed(client) == [("thing.updated", data)]


def _started(client) -> ConnectorClient:
    """The client as a poll holds it: STARTED, leased, due."""
    ConnectorClient.update(status="STARTED", lease_token="poll", next_poll_at=utcnow(),
                           leased_until=utcnow() + datetime.timedelta(minutes=1)).where(
        ConnectorClient.id == client.id).execute()
    return ConnectorClient.get_by_id(client.id)


def test_new_readings_are_recorded_in_one_statement(database, flask_app, monkeypatch):
    """A STARTED client's poll that brought nothing but new readings: on PostgreSQL the poll's
    record, the readings and their events are one statement and no transaction; SQLite (no
    writes in a CTE) leaves them to the poll's transaction. Both store the same events."""
    with flask_app.app_context():
        client = _started(_client())
        sync_things(client, [_spec()])
        plan = sync.plan(sync.read_stored(client.id), [_spec(temp="21.0", humidity="55")])
        statements = Statements(monkeypatch)
        recorded = lifecycle.mark_polled(client, plan.values)
        if database == "sqlite":
            assert not recorded and statements.sql == []
            assert lifecycle.record_success(client) == []
            with db.atomic():
                events.emit_many(client.app_id, sync.apply(client, plan))
        else:
            assert recorded and (len(statements.sql), statements.transactions) == (1, 0)
        assert _values(client) == {"temperature": "21.0", "humidity": "55"}
        feed = events.read_after(client.app_id, 0, 100)
        assert [(e.seq, e.type, e.external_subject_id) for e in feed] == [
            (1, "thing.created", "alice"), (2, "thing.property_changed", "alice"),
            (3, "thing.property_changed", "alice")]
        first = feed[1].data
        assert list(first) == ["thingId", "componentId", "propertyId", "oldValue", "newValue",
                               "lastUpdate"]
        assert [(e.data["propertyId"], e.data["oldValue"], e.data["newValue"])
                for e in feed[1:]] == [("temperature", "20.5", "21.0"), ("humidity", "50", "55")]
        assert first["componentId"] == "climate" and first["lastUpdate"].endswith("Z")
        row = ConnectorClient.get_by_id(client.id)
        assert (row.lease_token, row.leased_until, row.failure_count) == (None, None, 0)
        assert row.last_success_at is not None and row.next_poll_at > client.next_poll_at


def test_one_statement_readings_number_only_the_values_written(clean_db):
    """PostgreSQL: a reading already stored by someone else (here the first one) is not news;
    the events of the values written take the app's next ids without a gap."""
    client = _started(_client())
    sync_things(client, [_spec()])
    plan = sync.plan(sync.read_stored(client.id), [_spec(temp="22.0", humidity="55")])
    Property.update(value="22.0").where(Property.property_id == "temperature").execute()
    assert lifecycle.mark_polled(client, plan.values)
    feed = events.read_after(client.app_id, 0, 100)
    assert [(e.seq, e.data.get("propertyId"), e.data.get("oldValue")) for e in feed] == [
        (1, None, None), (2, "humidity", "50")]
    assert events.last_seq(client.app_id) == 2
    assert _values(client) == {"temperature": "22.0", "humidity": "55"}


def test_one_statement_readings_wait_for_a_held_property_and_tell_its_value(clean_db,
                                                                            flask_app):
    """PostgreSQL: another writer (a stale poll of the client past its lease) holds a property
    the poll writes: the statement waits for it holding the client row but not yet the app's
    event counter (the poll's lock order), then tells the value that writer committed, any
    text."""
    client = _started(_client())
    sync_things(client, [_spec()])
    plan = sync.plan(sync.read_stored(client.id), [_spec(temp="22.0", humidity="55")])
    temperature = Property.get(Property.property_id == "temperature").id
    odd = 'a "quoted" \\ back\u00fcslash \U0001f321'
    with waiting_on(flask_app, "UPDATE property SET value = %s WHERE id = %s",
                     (odd, temperature), lambda: lifecycle.mark_polled(client, plan.values),
                     "WITH polled AS") as (probe, recorded):
        with probe.transaction():
            with pytest.raises(psycopg.errors.LockNotAvailable):
                probe.execute("SELECT 1 FROM connector_client WHERE id = %s"
                              " FOR UPDATE NOWAIT", (client.id,))
        with probe.transaction():
            assert probe.execute("SELECT 1 FROM event_counter WHERE app_id = %s"
                                 " FOR UPDATE NOWAIT", (client.app_id,)).fetchone()
    assert recorded == [True]
    assert [(e.seq, e.data["propertyId"], e.data["oldValue"], e.data["newValue"])
            for e in events.read_after(client.app_id, 1, 100)] == [
        (2, "temperature", odd, "22.0"), (3, "humidity", "50", "55")]
    assert _values(client) == {"temperature": "22.0", "humidity": "55"}


def test_one_statement_readings_write_nothing_for_a_client_no_longer_started(clean_db):
    """PostgreSQL: the client moved (an error, a reauthorization) while its poll fetched:
    nothing is written or told, and the poll takes its transaction, which moves the status."""
    client = _started(_client())
    sync_things(client, [_spec()])
    plan = sync.plan(sync.read_stored(client.id), [_spec(temp="23.0")])
    ConnectorClient.update(status="ERROR").where(ConnectorClient.id == client.id).execute()
    assert not lifecycle.mark_polled(client, plan.values)
    assert _values(client)["temperature"] == "20.5"
    assert [e.type for e in events.read_after(client.app_id, 0, 100)] == ["thing.created"]
    row = ConnectorClient.get_by_id(client.id)
    assert (row.status, row.lease_token, row.last_success_at) == ("ERROR", "poll", None)


def test_deleting_a_client_locks_its_row_before_its_things(clean_db, flask_app):
    """PostgreSQL: a client's deletion takes the rows in a poll's order (client, then things),
    so while it waits for a client row a poll's record holds, it holds none of its things and
    the two cannot deadlock."""
    client = _started(_client())
    sync_things(client, [_spec()])
    thing = Thing.get(Thing.connector_client == client)
    # The hold: a poll recording its outcome.
    with waiting_on(flask_app, "UPDATE connector_client SET updated_at = now() WHERE id = %s",
                     (client.id,), lambda: lifecycle.delete_client(client) or "deleted",
                     'SELECT "t1"."id" FROM "connector_client"') as (probe, deleted):
        with probe.transaction():
            assert probe.execute("SELECT 1 FROM thing WHERE id = %s FOR UPDATE NOWAIT",
                                 (thing.id,)).fetchone()
    assert deleted == ["deleted"]
    assert not Thing.select().where(Thing.connector_client == client).exists()
    assert not ConnectorClient.select().where(ConnectorClient.id == client.id).exists()
