"""Statements that run again and again (the dispatcher each second, API and console pages) read
the work at hand, not everything an app did before: each test seeds thousands of rows of
history, has the code send its statement, and bounds the rows PostgreSQL reads for it, in a
custom plan and in the generic plan a statement psycopg has prepared may get."""

import re

import psycopg
import pytest

from thingbridge import tasks
from thingbridge.actions import service
from thingbridge.db import db
from thingbridge.models import App, Thing

HISTORY = 6000


def _scans(node):
    if node["Node Type"].endswith("Scan"):
        yield node
    for child in node.get("Plans", []):
        yield from _scans(child)


def _read(plan) -> int:
    return sum((n.get("Actual Rows", 0) + n.get("Rows Removed by Filter", 0))
               * n.get("Actual Loops", 1) for n in _scans(plan[0]["Plan"]))


def rows_read(sql: str, params: list) -> dict[str, int]:
    """Rows the statement's scans read, in its custom plan and in its generic plan."""
    custom = db.execute_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone()[0]
    numbers = iter(range(1, len(params) + 1))
    prepared = re.sub("%s", lambda _: f"${next(numbers)}", sql)
    literals = psycopg.ClientCursor(db.connection()).mogrify(
        ", ".join(["%s"] * len(params)), params)
    with db.atomic():
        db.execute_sql("PREPARE history_check AS " + prepared.replace("%", "%%"))
        try:
            db.execute_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            generic = db.execute_sql(("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE history_check("
                                      + literals + ")").replace("%", "%%")).fetchone()[0]
        finally:
            db.execute_sql("DEALLOCATE history_check")
    return {"custom": _read(custom), "generic": _read(generic)}


@pytest.fixture
def sent(monkeypatch):
    """The statements the code sends, with their parameters."""
    statements = []
    database = db.obj
    execute = database.execute_sql

    def spy(sql, params=None, *args, **kwargs):
        statements.append((sql, list(params or [])))
        return execute(sql, params, *args, **kwargs)

    monkeypatch.setattr(database, "execute_sql", spy)
    return statements


def _app_with_thing():
    app, _ = App.register("history")
    thing = Thing.create(app=app, external_subject_id="alice", created_by=app,
                         main_component_id="c")
    return app, thing


def _seed_requests(app, thing, statuses_sql: str) -> None:
    """HISTORY requests of ``app`` over the last month, finished as ``statuses_sql`` says;
    each keeps the time it was due, as a delivered request does."""
    db.execute_sql(
        'INSERT INTO "action_request" ("id", "created_at", "app_id", "external_subject_id",'
        ' "thing_id", "component_id", "action_id", "parameters", "status", "deadline",'
        ' "attempts", "updated_at", "next_attempt_at")'
        " SELECT gen_random_uuid(), t, %s, 'alice', %s, 'c', 'a', '{}', " + statuses_sql
        + ", t, 1, t, t FROM (SELECT n, now()::timestamp - interval '30 days'"
        " + n * interval '6 minutes' AS t FROM generate_series(1, %s) AS n) AS s",
        [app.id, thing.id, HISTORY])
    db.execute_sql('ANALYZE "action_request"')


def test_the_dispatcher_reads_the_due_requests_not_the_finished_ones(clean_db, sent,
                                                                     monkeypatch):
    app, thing = _app_with_thing()
    _seed_requests(app, thing, "'COMPLETED'")
    due = [service.record_request(app, "alice", thing, "c", "a", {}, deliver=True).id
           for _ in range(3)]
    monkeypatch.setattr(tasks, "enqueue_many", lambda *args: None)
    sent.clear()
    assert service.dispatch_due(200) == 3
    sql, params = next((s, p) for s, p in sent if s.startswith("SELECT"))
    db.execute_sql('UPDATE "action_request" SET "leased_until" = NULL WHERE "id" IN (%s, %s, %s)',
                   due)
    read = rows_read(sql, params)
    assert max(read.values()) < 50, read  # the three due requests, not 6,000 finished ones


def test_an_apps_newest_requests_are_read_without_its_history(clean_db, sent):
    app, thing = _app_with_thing()
    _seed_requests(app, thing, "CASE WHEN n %% 50 = 0 THEN 'FAILED' ELSE 'COMPLETED' END")
    sent.clear()
    assert len(service.recent_requests(app, 50)) == 50
    read = rows_read(*sent[-1])
    assert max(read.values()) < 200, read  # the 50 newest and their things, not 6,000


def _deliveries(api, events: int) -> str:
    """An endpoint of ``api``'s app with ``events`` events delivered, each with its attempt."""
    resp = api.post("/api/v1/webhooks", json={"url": "https://example.com/hook"})
    assert resp.status_code == 201, resp.json
    app_id, endpoint_id = api.model.id, resp.json["id"]
    db.execute_sql(
        'INSERT INTO "event" ("app_id", "seq", "type", "external_subject_id", "data",'
        ' "created_at") SELECT %s, n, \'thing.updated\', \'alice\', \'{}\', now()'
        " FROM generate_series(1, %s) AS n", [app_id, events])
    db.execute_sql(
        'INSERT INTO "webhook_delivery" ("created_at", "endpoint_id", "event_id", "seq", "lane",'
        ' "status", "attempts", "next_attempt_at", "finished_at") SELECT now(), %s, "id", "seq",'
        " 'alice', 'DELIVERED', 1, now(), now() FROM \"event\" WHERE \"app_id\" = %s"
        ' ORDER BY "seq"', [endpoint_id, app_id])
    db.execute_sql(
        'INSERT INTO "webhook_attempt" ("created_at", "delivery_id", "status_code",'
        ' "duration_ms") SELECT now(), "id", 200, 5 FROM "webhook_delivery"'
        ' WHERE "endpoint_id" = %s', [endpoint_id])
    return endpoint_id


def test_a_page_of_deliveries_reads_the_page(make_app, sent):
    """An endpoint's first page, its deliveries written after another app's many: neither the
    endpoint's whole history nor the other endpoint's is read for it."""
    _deliveries(make_app("busy"), 5 * HISTORY)
    quiet = make_app("quiet")
    endpoint_id = _deliveries(quiet, HISTORY // 3)
    for table in ("event", "webhook_delivery", "webhook_attempt"):
        db.execute_sql(f'VACUUM ANALYZE "{table}"')  # as autovacuum leaves delivered rows
    sent.clear()
    resp = quiet.get(f"/api/v1/webhooks/{endpoint_id}/deliveries?limit=100")
    assert resp.status_code == 200 and len(resp.json["deliveries"]) == 100, resp.json
    page = next((sql, params) for sql, params in sent
                if sql.startswith('SELECT "t1"."id", "t1"."created_at", "t1"."endpoint_id"'))
    # The custom plan only: a generic one guesses the page size (a parameter) as a tenth of
    # the table, and its estimate then grows with the table, so PostgreSQL keeps custom plans.
    read = rows_read(*page)
    assert read["custom"] < 400, read  # a page of 101 and their events
