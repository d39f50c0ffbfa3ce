"""An action's trigger, delivery take and terminal move on both databases they run on, and how
many statements each sends on PostgreSQL: the trigger's rate spend, its request's insert and
the request's event are one statement, the terminal move appends its event in the same
statement (both outside any transaction), and the take reads the delivery's target with it,
its transaction sent to the server in one flight."""

import math
import select
import threading

import psycopg
import pytest
import requests
from flows import sim_stats
from helpers import DATABASE_URL, PUBLIC_BASE_URL, SECRET_KEY, Statements
from peewee import DataError

from thingbridge.actions import delivery, service
from thingbridge.db import db, utcnow
from thingbridge.db_pool import CommitUncertain
from thingbridge.errors import ApiError
from thingbridge.limits import quotas
from thingbridge.models import (
    Action,
    ActionRequest,
    App,
    Component,
    ConnectorClient,
    ConnectorInstance,
    EventCounter,
    RateWindow,
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
            # The request and its event, no transaction around them.
            assert (len(statements.sql), statements.transactions) == (1, 0)
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


DEMO = ("thingbridge-demo", "demo-secret")  # the simulator's own app


def test_the_apis_own_attempt_reaches_the_provider_and_answers_its_outcome(
        database, flask_app, netatmo_sim, monkeypatch):
    """The API's attempt (actions/delivery.py) on either database: the trigger returns the
    request COMPLETED by the provider's simulator, the answer built from what the attempt
    wrote rather than read back. On PostgreSQL: the insert, the take's one flight, the move
    and the refresh poll's due time, nothing more."""
    from thingbridge.api import outside_calls
    from thingbridge_workers.polling import poll

    with flask_app.app_context():
        app, _ = App.register("thermostats")
        grant = requests.post(f"{netatmo_sim}/_sim/grant", json={"client_id": DEMO[0]},
                              timeout=5).json()
        instance = ConnectorInstance.create(app=app, type_id="netatmo", configuration={
            "client_id": DEMO[0], "client_secret": DEMO[1], "origin_callback_uri": "http://x/cb"})
        client = ConnectorClient.create(
            app=app, instance=instance, type_id="netatmo", external_subject_id="alice",
            configuration={}, next_poll_at=utcnow(),
            tokens={k: grant[k] for k in ("access_token", "refresh_token")})
        assert poll(client.id) == "ok"
        room = Thing.get(Thing.display_type == "THERMOSTAT")
        monkeypatch.setitem(flask_app.config, "API_OUTSIDE_CALLS", 2)
        statements = Statements(monkeypatch)
        request = _trigger(app, room, None, slot=outside_calls.slot)
        assert (request.status, request.error) == ("COMPLETED", None)
        if database == "postgres":
            assert (len(statements.sql), statements.transactions, statements.flights) == (
                3, 0, [2])
        stored = ActionRequest.get_by_id(request.id)
        assert (stored.status, stored.lease_token) == ("COMPLETED", None)
        calls = sim_stats(netatmo_sim)
        assert [c["mode"] for c in calls["setroomthermpoint_calls"]] == ["max"]


def _rate(app, flask_app, monkeypatch, limit=2):
    monkeypatch.setitem(flask_app.config, "ACTION_TRIGGERS_PER_MINUTE", limit)
    return quotas.Rate("ACTION_TRIGGERS_PER_MINUTE", f"actions:{app.id}", "action triggers")


def _window(app) -> tuple:
    window = RateWindow.get(RateWindow.key == f"actions:{app.id}")
    return window.window_start, window.used


def _trigger(app, room, rate, **kwargs):
    return _keyed(app, room, rate, **kwargs)[0]


def _keyed(app, room, rate, **kwargs) -> tuple[ActionRequest, bool]:
    return delivery.create_request(app, "alice", room, "thermostat", "setRoomThermPoint",
                                   {"mode": "max"}, rate=rate, **kwargs)


def test_an_idempotency_key_records_one_request(database, flask_app, monkeypatch):
    """A trigger with a key a trigger before it recorded (committed after this one looked, as
    in a race) records nothing and spends nothing: the key's unique index refuses the insert,
    and its spend with it; the earlier request is the answer."""
    with flask_app.app_context():
        app, room = _room()
        rate = _rate(app, flask_app, monkeypatch, limit=5)
        statements = Statements(monkeypatch)
        first, recorded = _keyed(app, room, rate, key="k-1")
        if database == "postgres":  # as a trigger without a key: one statement, on its own
            assert (len(statements.sql), statements.transactions, statements.flights) == (
                1, 0, [])
        spent = _window(app)
        again, recorded_again = _keyed(app, room, rate, key="k-1")
        assert (recorded, recorded_again, again.id) == (True, False, first.id)
        assert _window(app) == spent
        other, _ = _keyed(app, room, rate, key="k-2")
        assert other.id != first.id and ActionRequest.select().count() == 2
        assert [e.type for e in events.read_after(app.id, 0, 10)] == ["action.requested"] * 2


def test_trigger_spends_and_records_in_one_statement(database, flask_app, monkeypatch):
    """An accepted trigger: the rate spend, the request and its event in one statement on
    PostgreSQL (a transaction of two on SQLite); a spent minute refuses the trigger with a 429
    whose Retry-After is the window's end, and records nothing."""
    with flask_app.app_context():
        app, room = _room()
        rate = _rate(app, flask_app, monkeypatch)
        statements = Statements(monkeypatch)
        accepted = [_trigger(app, room, rate)]
        if database == "postgres":
            assert (len(statements.sql), statements.transactions, statements.flights) == (
                1, 0, [])
        else:
            assert (len(statements.sql), statements.transactions) == (4, 1)  # spend, request,
            # counter, events
        accepted.append(_trigger(app, room, rate))
        statements.reset()
        with pytest.raises(ApiError) as refused:
            _trigger(app, room, rate)
        if database == "postgres":
            assert (len(statements.sql), statements.transactions) == (1, 0)
        now = utcnow()
        assert refused.value.code == 429 and refused.value.error == "TOO_MANY_REQUESTS"
        assert refused.value.description == (
            "too many action triggers: at most 2 per minute "
            "(THINGBRIDGE_ACTION_TRIGGERS_PER_MINUTE)")
        window_end = now.replace(second=0, microsecond=0).timestamp() + 60
        retry_after = int(refused.value.data["headers"]["Retry-After"])
        assert retry_after in {max(1, math.ceil(window_end - now.timestamp())), 60}
        stored = ActionRequest.select().order_by(ActionRequest.created_at)
        assert [r.id for r in stored] == [r.id for r in accepted]
        assert all(r.status == "PENDING" and r.next_attempt_at for r in stored)
        feed = events.read_after(app.id, 0, 10)
        assert [(e.type, e.data["id"]) for e in feed] == [
            ("action.requested", r.id) for r in accepted]
        # A full window stays as it is; a minute that rolled over mid-test starts a new one.
        assert _window(app)[1] in {2, 1}


def test_a_trigger_records_its_spend_request_and_event_together_or_not_at_all(
        database, flask_app, monkeypatch):
    """A request whose event cannot be appended is not recorded, and its spend is undone with
    it: nothing of a failed trigger is committed."""
    with flask_app.app_context():
        app, room = _room()
        rate = _rate(app, flask_app, monkeypatch, limit=5)
        _trigger(app, room, rate)
        spent = _window(app)
        table = events.Event._meta.table_name
        if database == "postgres":
            db.execute_sql("CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql"
                           " AS $$BEGIN RAISE EXCEPTION 'event refused'; END$$")
            db.execute_sql(f'CREATE TRIGGER refuse_event BEFORE INSERT ON "{table}"'
                           " FOR EACH ROW EXECUTE FUNCTION refuse_event()")
        else:
            db.execute_sql(f'CREATE TRIGGER refuse_event BEFORE INSERT ON "{table}"'
                           " BEGIN SELECT RAISE(ABORT, 'event refused'); END")
        try:
            with pytest.raises(Exception, match="event refused"):
                _trigger(app, room, rate)
        finally:
            db.execute_sql("DROP FUNCTION refuse_event() CASCADE" if database == "postgres"
                           else "DROP TRIGGER refuse_event")
        assert ActionRequest.select().count() == 1
        assert len(events.read_after(app.id, 0, 10)) == 1
        assert EventCounter.get(EventCounter.app == app.id).last_seq == 1
        assert _window(app) == spent  # the failed trigger's spend was undone
        _trigger(app, room, rate)  # the connection is usable: the statement rolled back
        assert ActionRequest.select().count() == 2


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


def test_a_trigger_with_its_broker_down_is_left_due_for_the_dispatcher(
        clean_db, flask_app, second_app, monkeypatch, caplog):
    """The delivery task is sent after the statement committed: a broker that is down leaves
    the request recorded and due, and the dispatcher sends it once the broker is back."""
    broken = second_app({"DATABASE_URL": DATABASE_URL, "SECRET_KEYS": SECRET_KEY,
                         "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
                         "BROKER_URL": "redis://127.0.0.1:1/0"})
    with broken.app_context():
        app, room = _room()
        rate = _rate(app, broken, monkeypatch)
        statements = Statements(monkeypatch)
        request = _trigger(app, room, rate)
        assert (len(statements.sql), statements.transactions) == (1, 0)
        assert "broker unavailable, thingbridge.deliver_action left to the dispatcher" in (
            caplog.text)
        stored = ActionRequest.get_by_id(request.id)
        assert stored.status == "PENDING" and stored.next_attempt_at <= utcnow()
        assert [e.type for e in events.read_after(app.id, 0, 10)] == ["action.requested"]
    assert service.dispatch_due(10) == 1  # this app's broker is up


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
