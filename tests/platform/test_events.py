"""The outbox and the pull feed: every change is an event, in order, per app, never orphaned."""

import threading

from helpers import LAMP

EVENTS = "/api/v1/events"
THINGS = "/api/v1/things"


def feed(api, after=0, limit=100):
    resp = api.get(f"{EVENTS}?after={after}&limit={limit}")
    assert resp.status_code == 200, resp.json
    return resp.json


def test_thing_lifecycle_is_a_sequence_of_events(api):
    thing_id = api.post(THINGS, json=LAMP).json["Id"]
    path = f"{THINGS}/{thing_id}/components/switch/properties/level"
    assert api.put(path, json={"value": "70"}).status_code == 204
    assert api.put(path, json={"value": "70"}).status_code == 204  # unchanged: no event
    assert api.patch(f"{THINGS}/{thing_id}", json={"status": "UNAVAILABLE"}).status_code == 204
    assert api.delete(f"{THINGS}/{thing_id}").status_code == 204

    page = feed(api)
    types = [e["type"] for e in page["events"]]
    assert types == ["thing.created", "thing.property_changed", "thing.updated",
                     "thing.deleted"]
    assert [e["id"] for e in page["events"]] == [1, 2, 3, 4]
    assert page["cursor"] == 4 and page["has_more"] is False
    created, changed, updated, deleted = page["events"]
    assert created["app"] == api.model.id and created["external_subject_id"] == "alice"
    assert created["occurred_at"].endswith("Z")
    assert created["data"]["thingId"] == thing_id and created["data"]["name"] == "Desk lamp"
    assert changed["data"] == {"thingId": thing_id, "componentId": "switch",
                               "propertyId": "level", "oldValue": "40", "newValue": "70",
                               "lastUpdate": changed["data"]["lastUpdate"]}
    assert updated["data"]["status"] == "UNAVAILABLE"
    assert deleted["data"] == {"thingId": thing_id}


def test_cursor_and_limit_page_through_without_gaps(api):
    for _ in range(5):
        api.post(THINGS, json=LAMP)
    first = feed(api, limit=2)
    assert [e["id"] for e in first["events"]] == [1, 2] and first["has_more"] is True
    second = feed(api, after=first["cursor"], limit=2)
    assert [e["id"] for e in second["events"]] == [3, 4]
    last = feed(api, after=second["cursor"], limit=2)
    assert [e["id"] for e in last["events"]] == [5] and last["has_more"] is False
    empty = feed(api, after=last["cursor"])
    assert empty == {"events": [], "cursor": 5, "has_more": False}


def test_events_are_per_app(api, make_app):
    other = make_app("app-b")
    api.post(THINGS, json=LAMP)
    other.post(THINGS, json=LAMP)
    other.post(THINGS, json=LAMP)
    assert [e["id"] for e in feed(api)["events"]] == [1]
    assert [e["id"] for e in feed(other)["events"]] == [1, 2]
    assert all(e["app"] == other.model.id for e in feed(other)["events"])


def test_feed_needs_the_events_scope(make_app):
    limited = make_app("limited", token_scopes=["connctd.things.read"])
    resp = limited.get(EVENTS)
    assert resp.status_code == 403 and resp.json["error"] == "insufficient_scope"


def test_bad_cursor_is_a_400(api):
    # Python's int would read the last four (an Arabic-Indic five, a sign, a space, a "_").
    for query in ("after=-1", "after=abc", "limit=0", "limit=1001", "limit=%D9%A5", "after=%2B5",
                  "after=%205", "after=1_0"):
        resp = api.get(f"{EVENTS}?{query}")
        assert resp.status_code == 400, query
        assert resp.json["status"] == 400 and resp.json["description"]


def test_a_rolled_back_change_leaves_no_event(api):
    from thingbridge.db import db
    from thingbridge.outbox import events

    class Boom(Exception):
        pass

    try:
        with db.atomic():
            events.emit(api.model.id, "thing.deleted", "alice", {"thingId": "x"})
            raise Boom
    except Boom:
        pass
    assert feed(api)["events"] == []
    api.post(THINGS, json=LAMP)
    # The rolled-back event did not use up an id either.
    assert [e["id"] for e in feed(api)["events"]] == [1]


def test_concurrent_writers_get_contiguous_ids_in_commit_order(api, flask_app):
    """Eight threads emitting for one app: ids 1..N with no gap or duplicate, and a reader
    polling meanwhile never sees an id before a smaller one has committed."""
    from thingbridge.db import db
    from thingbridge.outbox import events

    app_id, per_thread, seen, stop = api.model.id, 25, [], threading.Event()

    def writer():
        with flask_app.app_context(), db.connection_context():
            for _ in range(per_thread):
                with db.atomic():
                    events.emit(app_id, "thing.deleted", "alice", {"thingId": "x"})

    def reader():
        # Reads while the writers run, then until a read after they all ended finds nothing:
        # it ends even if a writer died, and the assertion below tells what is missing.
        cursor = 0
        with flask_app.app_context(), db.connection_context():
            while True:
                finished = stop.is_set()
                batch = events.read_after(app_id, cursor, 50)
                for event in batch:
                    seen.append(event.seq)
                    cursor = event.seq
                if finished and not batch:
                    return

    threads = [threading.Thread(target=writer) for _ in range(8)]
    read = threading.Thread(target=reader)
    read.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    read.join()
    assert seen == list(range(1, 8 * per_thread + 1))
