"""A connection lost under a write: the API says whether the write may have been recorded.
Inside a transaction nothing of it committed (503 SERVICE_UNAVAILABLE: repeat it); a write
that was its own transaction may have (503 COMMIT_UNCERTAIN: look before repeating it).
PostgreSQL only: SQLite has no connection to lose."""

from __future__ import annotations

import os
import socket

import pytest
from helpers import LAMP, lock_waiters, waiting_on

from thingbridge.db import db
from thingbridge.db_pool import CommitUncertain, DatabaseUnavailable
from thingbridge.models import ActionRequest, App, Thing

THINGS = "/api/v1/things"
RENAME = 'UPDATE "app" SET "name" = %s WHERE "id" = %s'
# Another transaction holds the app's event counter, so the request's event append waits.
HOLD_COUNTER = "UPDATE event_counter SET last_seq = last_seq WHERE app_id = %s"


def test_a_statement_lost_outside_a_transaction_is_uncertain_inside_one_undone(clean_db):
    app, _ = App.register("lost")
    with pytest.raises(CommitUncertain):
        db.execute_sql(f"WITH renamed AS ({RENAME} RETURNING 1) SELECT"
                       " pg_terminate_backend(pg_backend_pid()) FROM renamed", ["maybe", app.id])
    with pytest.raises(DatabaseUnavailable) as lost:
        with db.atomic():
            db.execute_sql(RENAME, ["undone", app.id])
            db.execute_sql("SELECT pg_terminate_backend(pg_backend_pid())")
    assert not isinstance(lost.value, CommitUncertain)
    assert App.get_by_id(app.id).name != "undone"  # and the next statement has a connection


def test_a_server_that_vanishes_is_noticed_on_every_connection(clean_db):
    """A partition gives no word: keepalive probes (while nothing is unacknowledged, as when a
    statement waits for its answer) and the TCP user timeout (while something is) end the
    connection within 25 s. What the pool's connections carry, read back from their sockets."""
    with socket.socket(fileno=os.dup(db.connection().fileno())) as sock:  # a copy to close
        options = (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                   sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                   sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                   sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                   sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))
    assert options == (1, 10, 5, 3, 25_000)


def _lose_waiting(probe, statement: str) -> None:
    """End the session whose ``statement`` waits for the held lock."""
    (pid,) = lock_waiters(probe, statement)
    assert probe.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def _assert_503(resp, error: str) -> None:
    assert resp.status_code == 503, resp.json
    assert resp.json["status"] == 503 and resp.json["error"] == error
    assert resp.headers["Retry-After"].isdigit()


def test_an_action_trigger_lost_on_its_way_may_have_been_recorded(api, flask_app):
    """The trigger is one statement (the rate spend, the request and its event), committed on
    its own: lost under it, the API cannot know whether the request was recorded."""
    api.post("/api/v1/actions/callback/register", json={"callbackUrl": "https://example.com/a"})
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    trigger = f"{THINGS}/{thing_id}/components/switch/actions/setOn"
    with waiting_on(flask_app, HOLD_COUNTER, (api.model.id,),
                    lambda: api.post(trigger, json={"on": "true"}),
                    "WITH spent AS") as (probe, answers):
        _lose_waiting(probe, "WITH spent AS")
    _assert_503(answers[0], "COMMIT_UNCERTAIN")
    assert "may have been recorded" in answers[0].json["description"]
    assert ActionRequest.select().count() == 0  # this time it was not: the app looks
    assert api.post(trigger, json={"on": "true"}).status_code == 201


def test_a_thing_lost_in_its_transaction_is_not_recorded(api, flask_app):
    """Creating a thing is a transaction: lost under it, nothing committed and the API says
    so (the plain 503); the same request repeated then succeeds."""
    api.post(THINGS, json=LAMP)  # the app's event counter exists
    with waiting_on(flask_app, HOLD_COUNTER, (api.model.id,),
                    lambda: api.post(THINGS, json={**LAMP, "name": "second"}),
                    "WITH ") as (probe, answers):
        _lose_waiting(probe, "WITH ")
    _assert_503(answers[0], "SERVICE_UNAVAILABLE")
    assert Thing.select().where(Thing.name == "second").count() == 0
    assert api.post(THINGS, json={**LAMP, "name": "second"}).status_code == 201


def test_sqlite_locked_past_its_busy_timeout_is_busy_not_an_error(tmp_path):
    """The embedded mode's SQLite takes one writer at a time; a writer that holds the lock
    past the busy timeout makes the others' statements DatabaseBusy (503 DATABASE_BUSY, a
    task retried), as a PostgreSQL statement timeout does, not an unexpected error."""
    import sqlite3

    from thingbridge.db import WaitingSqliteDatabase
    from thingbridge.db_pool import DatabaseBusy

    path = tmp_path / "embedded.db"
    database = WaitingSqliteDatabase(str(path), pragmas={"busy_timeout": 100})
    database.execute_sql("CREATE TABLE counter (n INTEGER)")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseBusy):
            database.execute_sql("INSERT INTO counter VALUES (1)")
        with pytest.raises(DatabaseBusy):
            database.begin("IMMEDIATE")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    database.execute_sql("INSERT INTO counter VALUES (1)")
    assert database.execute_sql("SELECT count(*) FROM counter").fetchone() == (1,)


@pytest.mark.parametrize("code, said", [("disk_full", "disk space"),
                                         ("out_of_memory", "memory"),
                                         ("deadlock_detected", "deadlock")])
def test_a_write_the_server_refuses_for_now_is_503_and_wrote_nothing(api, code, said):
    """PostgreSQL refusing a write for now on a connection that is fine (out of disk or
    memory: SQLSTATE class 53; a deadlock it broke) is 503 DATABASE_BUSY, not an unexpected
    500. The server raises the real error from a trigger, as it would from a full disk."""
    from thingbridge.db import db

    db.execute_sql(f"""
        CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device'
              USING ERRCODE = '{code}'; END $$;
        CREATE TRIGGER disk_full BEFORE INSERT ON thing FOR EACH ROW
            EXECUTE FUNCTION disk_full();""")
    try:
        resp = api.post("/api/v1/things", json=LAMP)
    finally:
        db.execute_sql("DROP TRIGGER disk_full ON thing; DROP FUNCTION disk_full();")
    assert resp.status_code == 503, resp.json
    assert resp.json["error"] == "DATABASE_BUSY" and said in resp.json["description"]
    assert "base/1/2" not in resp.json["description"]  # the server's own text stays in the log
    assert resp.headers["Retry-After"] == "5"
    assert api.get("/api/v1/things").json == []
    assert api.post("/api/v1/things", json=LAMP).status_code == 201


def test_a_request_that_recorded_part_of_its_work_does_not_say_nothing_was_written(
        api, netatmo_sim):
    """A connector-service action records its request (committed), has the provider perform
    it, then records the outcome: a database that refuses that last step must not answer
    "nothing was written, try again", as the request is recorded and the action performed."""
    import json
    from urllib.parse import urlsplit

    from flows import consent, poll_due, sim_stats

    from thingbridge.actions import signing

    assert poll_due(consent(api)["client_id"]) == "ok"
    room = Thing.get(Thing.display_type == "THERMOSTAT")
    key = api.post("/api/v1/actions/callback/register",
                   json={"CallbackUrl": "https://app.example.com/cb"}).json["signingKey"]
    url = api.get("/api/v1/connectors/callbackurl").json["href"]
    body = json.dumps({"id": "r1", "thingId": room.id, "componentId": "thermostat",
                       "actionId": "setRoomThermPoint", "parameters": {"mode": "max"}}).encode()
    date = signing.http_date()
    db.execute_sql("""
        CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'No space left on device' USING ERRCODE = 'disk_full'; END $$;
        CREATE TRIGGER disk_full BEFORE UPDATE ON action_request FOR EACH ROW
            EXECUTE FUNCTION disk_full();""")
    try:
        resp = api.http.post(urlsplit(url).path, data=body, headers={
            "Content-Type": "application/json", "Date": date,
            signing.SIGNATURE_HEADER: signing.signature(key, "POST", url, date, body)})
    finally:
        db.execute_sql("DROP TRIGGER disk_full ON action_request; DROP FUNCTION disk_full();")
    assert resp.status_code == 503, resp.json
    assert sim_stats(netatmo_sim)["setroomthermpoint_calls"][-1]["mode"] == "max"
    assert ActionRequest.get(ActionRequest.external_id == "r1").status == "PENDING"
    assert resp.json["error"] == "COMMIT_UNCERTAIN"
    assert "already recorded part of its work" in resp.json["description"]
    assert resp.headers["Retry-After"] == "5"
