"""An action's trigger, delivery take and terminal move on both databases they run on, and how
many statements each sends on PostgreSQL: the request's insert and the terminal move each
append their event in the same statement (the move outside any transaction), and the take
reads the delivery's target with it, its transaction sent to the server in one flight."""

import select
import threading

import psycopg
import pytest
from peewee import DataError

from thingbridge.actions import service
from thingbridge.db import db
from thingbridge.db_pool import CommitUncertain
from thingbridge.models import (
    Action,
    ActionRequest,
    App,
    Component,
    ConnectorClient,
    ConnectorInstance,
    Thing,
    ThingMapping,
)
from thingbridge.outbox import events
from thingbridge.things.service import own_action_target


def _room():
    app, _ = App.register("thermostats")
    instance = ConnectorInstance.create(app=app, type_id="netatmo",
                                        configuration={"client_id": "c", "client_secret": "s"})
    client = ConnectorClient.create(app=app, instance=instance, type_id="netatmo",
                                    external_subject_id="alice", configuration={},
                                    tokens={"access_token": "secret"})
    thing = Thing.create(app=app, external_subject_id="alice", created_by=app,
                         connector_client=client, name="Living room",
                         main_component_id="thermostat")
    component = Component.create(thing=thing, component_id="thermostat")
    Action.create(component=component, action_id="setRoomThermPoint",
                  parameters=[{"name": "mode", "type": "STRING", "required": True}])
    ThingMapping.create(client=client, thing=thing, connector_thing_id="room:h:r")
    return app, thing


class Statements:
    """Counts the statements and transactions the database is sent."""

    def __init__(self, monkeypatch):
        self.sql, self.transactions, self.flights = [], 0, []
        database = db.obj
        execute, begin = database.execute_sql, database.begin
        flight = getattr(database, "transaction_in_one_flight", None)

        def counting_flight(statements):
            self.flights.append(len(statements))
            return flight(statements)

        if flight is not None:
            monkeypatch.setattr(database, "transaction_in_one_flight", counting_flight)

        def counting_execute(sql, params=None, *args, **kwargs):
            self.sql.append(sql)
            return execute(sql, params, *args, **kwargs)

        def counting_begin(*args, **kwargs):
            self.transactions += 1
            return begin(*args, **kwargs)

        monkeypatch.setattr(database, "execute_sql", counting_execute)
        monkeypatch.setattr(database, "begin", counting_begin)

    def reset(self) -> None:
        self.sql.clear()
        self.transactions = 0
        self.flights.clear()


def test_trigger_take_and_finish(database, flask_app, monkeypatch):
    with flask_app.app_context():
        app, room = _room()
        statements = Statements(monkeypatch)
        thing, action = own_action_target(app, "alice", room.id, "thermostat",
                                          "setRoomThermPoint")
        assert (thing.id, thing.created_by.id, action.action_id) == (
            room.id, app.id, "setRoomThermPoint")
        assert action.parameters[0]["name"] == "mode"
        assert len(statements.sql) == 1  # thing, its creating app, component and action
        statements.reset()
        request = service.record_request(app, "alice", thing, "thermostat",
                                         "setRoomThermPoint", {"mode": "max"}, deliver=True)
        if database == "postgres":
            assert len(statements.sql) == 1  # the request and its event
        stored = ActionRequest.get_by_id(request.id)
        assert (stored.status, stored.parameters, stored.next_attempt_at) == (
            "PENDING", {"mode": "max"}, request.next_attempt_at)

        statements.reset()
        taken, (target_thing, client, device_id) = service.take_delivery(request.id, None)
        assert taken.id == request.id and taken.lease_token
        assert target_thing.id == room.id and device_id == "room:h:r"
        assert client.tokens == {"access_token": "secret"}
        assert client.instance.configuration == {"client_id": "c", "client_secret": "s"}
        if database == "postgres":
            # BEGIN, the app locked, the take with the target and COMMIT: one flight.
            assert (statements.sql, statements.transactions, statements.flights) == ([], 0, [2])
        assert service.take_delivery(request.id, None) is None  # held

        statements.reset()
        assert service.finish(taken, "COMPLETED", release=True)
        if database == "postgres":
            assert (len(statements.sql), statements.transactions) == (1, 0)
        assert not service.finish(taken, "FAILED", "late")  # moved once
        stored = ActionRequest.get_by_id(request.id)
        assert (stored.status, stored.lease_token, stored.delivering_until) == (
            "COMPLETED", None, None)
        feed = [(e.type, e.data) for e in events.read_after(app.id, 0, 10)]
        body = {"id": request.id, "thingId": room.id, "componentId": "thermostat",
                "actionId": "setRoomThermPoint", "parameters": {"mode": "max"}}
        assert feed == [("action.requested", {**body, "status": "PENDING"}),
                        ("action.completed", {**body, "status": "COMPLETED", "error": None})]


@pytest.mark.parametrize("share", [0, 4])
def test_take_without_the_app_limit(database, flask_app, monkeypatch, share):
    with flask_app.app_context():
        monkeypatch.setitem(flask_app.config, "ACTION_APP_CONCURRENCY", share)
        app, room = _room()
        request = service.record_request(app, "alice", room, "thermostat",
                                         "setRoomThermPoint", {"mode": "max"}, deliver=True)
        taken, (thing, client, device_id) = service.take_delivery(request.id, None)
        assert (taken.id, thing.id, device_id) == (request.id, room.id, "room:h:r")


def test_flight_rolls_back_on_a_statement_error(clean_db, flask_app):
    """A statement that fails inside a flight undoes the ones before it and leaves the
    connection usable: the pipeline skips the COMMIT after an error."""
    with flask_app.app_context():
        app, _ = App.register("flights")
        rename = 'UPDATE "app" SET "name" = %s WHERE "id" = %s'
        with pytest.raises(DataError):
            db.transaction_in_one_flight([(rename, ["renamed", app.id]),
                                          ("SELECT 1 / 0", [])])
        assert App.get_by_id(app.id).name == "flights"
        assert db.transaction_in_one_flight([(rename, ["renamed", app.id]),
                                             ('SELECT "name" FROM "app" WHERE "id" = %s',
                                              [app.id])]) == ("renamed",)
        assert App.get_by_id(app.id).name == "renamed"


def test_flight_on_a_lost_connection(clean_db, flask_app):
    """A connection the server hung up on while idle is replaced before the flight is sent; one
    lost under the flight raises CommitUncertain (a task is retried whole, the API answers 503)
    and the next statement runs on a new connection."""
    with flask_app.app_context():
        app, _ = App.register("flights")
        rename = 'UPDATE "app" SET "name" = %s WHERE "id" = %s'
        pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(flask_app.config["DATABASE_URL"], autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        # Wait for the server's goodbye to reach the idle connection, however long it takes.
        assert select.select([db._state.conn.fileno()], [], [], 30)[0]
        assert db.transaction_in_one_flight([(rename, ["healed", app.id]),
                                             ("SELECT 1", [])]) == (1,)
        with pytest.raises(CommitUncertain):
            db.transaction_in_one_flight([(rename, ["lost", app.id]),
                                          ("SELECT pg_terminate_backend(pg_backend_pid())",
                                           [])])
        assert App.get_by_id(app.id).name == "healed"


def test_a_take_in_progress_lets_the_apps_events_through(clean_db, flask_app, monkeypatch):
    """A take holds its app's row while it counts the app's deliveries in flight; a terminal
    move meanwhile holds its request and appends an event whose foreign key share-locks the
    app. The take's lock must let that pass, else the two deadlock."""
    with flask_app.app_context():
        monkeypatch.setitem(flask_app.config, "ACTION_APP_CONCURRENCY", 2)
        app, room = _room()
        request = service.record_request(app, "alice", room, "thermostat",
                                         "setRoomThermPoint", {"mode": "max"}, deliver=True)
        lock_app, _ = service._take(True, True)
        finished = {}

        def finish():
            with flask_app.app_context():
                finished["moved"] = service.finish(request, "FAILED", "timeout")

        with psycopg.connect(flask_app.config["DATABASE_URL"]) as taking:
            taking.execute(lock_app.sql, lock_app.values(id=request.id))  # the take's lock
            mover = threading.Thread(target=finish)
            mover.start()
            mover.join(30)  # blocked for good if the lock conflicts: the take never ends
            assert finished == {"moved": True}
            taking.rollback()
        assert ActionRequest.get_by_id(request.id).status == "FAILED"


def test_a_take_does_not_read_the_apps_history(clean_db, flask_app):
    """The take counts its app's deliveries in flight; an app with thousands of requests,
    finished or PENDING and waiting for the app's answer (not in flight), must not make every
    take read them all (it did, through the app's unique index or the status index, before the
    partial index of deliveries in flight)."""
    with flask_app.app_context():
        app, room = _room()
        request = service.record_request(app, "alice", room, "thermostat",
                                         "setRoomThermPoint", {"mode": "max"}, deliver=True)
        db.execute_sql(
            'INSERT INTO "action_request" ("id", "created_at", "app_id", "external_subject_id",'
            ' "thing_id", "component_id", "action_id", "parameters", "status", "deadline",'
            ' "attempts", "updated_at") SELECT gen_random_uuid(), now(), %s, %s, %s,'
            " 'thermostat', 'setRoomThermPoint', '{}',"
            " CASE WHEN n %% 3 = 0 THEN 'PENDING' ELSE 'COMPLETED' END, now(), 1, now()"
            " FROM generate_series(1, 6000) AS n", [app.id, "alice", room.id])
        db.execute_sql('ANALYZE "action_request"')
        _, take = service._take(True, True)
        now = ActionRequest.get_by_id(request.id).created_at
        plan = db.execute_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + take.sql, take.values(
            id=request.id, now=now, token="t", pending="PENDING", until=now, share=4)
        ).fetchone()[0]

        def scans(node):
            yield node
            for child in node.get("Plans", []):
                yield from scans(child)

        read = sum(n.get("Actual Rows", 0) + n.get("Rows Removed by Filter", 0)
                   for n in scans(plan[0]["Plan"]) if n["Node Type"].endswith("Scan"))
        assert read < 50, read  # the request, its target and the few in flight, not 6,000
