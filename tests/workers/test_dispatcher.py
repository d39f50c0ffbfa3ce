"""The dispatcher claims due clients in turns between apps: one app's backlog does not hold
back another app's clients coming due behind it."""

import datetime

import psycopg
import pytest
from helpers import DATABASE_URL, OWM_KEY

from thingbridge import tasks
from thingbridge.auth import credentials
from thingbridge.connectors import lifecycle
from thingbridge.db import utcnow
from thingbridge.models import App, ConnectorClient, ConnectorInstance
from thingbridge_workers.dispatcher import claim_due, dispatch


def _app_with_clients(name, count, first_due, prefix, **fields) -> list[str]:
    """An app with an OpenWeatherMap instance and ``count`` clients coming due a second apart
    from ``first_due``; their ids, longest-waiting first."""
    app, _ = App.register(name)
    instance = ConnectorInstance.create(app=app, type_id="openweathermap",
                                        configuration={"app_key": OWM_KEY})
    now = utcnow()
    rows = [dict(id=f"{prefix}{i:04d}", app=app.id, instance=instance.id,
                 type_id="openweathermap", external_subject_id=f"{prefix}-{i}",
                 configuration={"city": "Berlin"}, status="STARTED", status_since=now,
                 next_poll_at=first_due + datetime.timedelta(seconds=i), created_at=now,
                 updated_at=now, **fields) for i in range(count)]
    # Inserted newest first, so neither the ids nor the insertion order is the due order.
    ConnectorClient.insert_many(rows[::-1]).execute()
    return [row["id"] for row in rows]


def test_an_apps_backlog_takes_turns_with_the_others(database, flask_app):
    """An app with a backlog of 30 due clients (created at once an hour ago, say) and another
    whose 3 came due a second ago: the next batch of 10 carries the 3, and the backlog's
    longest-waiting 7. Before, the batch was the backlog's 10 oldest, and the other app's
    clients waited for the whole backlog to be sent (at DISPATCH_BATCH every
    DISPATCH_INTERVAL: minutes for a backlog of thousands)."""
    now = utcnow()
    with flask_app.app_context():
        backlog = _app_with_clients("backlog", 30, now - datetime.timedelta(hours=1), "b")
        small = _app_with_clients("small", 3, now - datetime.timedelta(seconds=5), "s")
        _app_with_clients("later", 2, now + datetime.timedelta(minutes=5), "l")
        broken = _app_with_clients("broken", 2, now - datetime.timedelta(hours=2), "e")
        ConnectorClient.update(status="ERROR").where(ConnectorClient.id.in_(broken)).execute()
        stopped = _app_with_clients("stopped", 2, now - datetime.timedelta(hours=3), "d")
        credentials.disable(App.get(App.name == "stopped"))
        ConnectorClient.update(next_poll_at=now).where(ConnectorClient.id.in_(stopped)).execute()

        first, _ = claim_due(10)
        assert sorted(first) == sorted(small + backlog[:7])
        second, _ = claim_due(10)  # the others wait in their leases now
        assert sorted(second) == backlog[7:17]
        assert sorted(claim_due(100)[0]) == backlog[17:]
        assert claim_due(100)[0] == []


def test_every_app_gets_a_turn_before_any_gets_a_second(database, flask_app):
    """Five apps with clients due and a batch of 7: one each, then the two longest-waiting
    second turns."""
    now = utcnow()
    with flask_app.app_context():
        apps = [_app_with_clients(f"app{n}", 3, now - datetime.timedelta(minutes=10 * n),
                                  f"a{n}-") for n in range(5)]
        claimed, _ = claim_due(7)
        firsts = {ids[0] for ids in apps}
        assert firsts <= set(claimed)
        # The second turns go to the apps whose second client has waited longest.
        assert set(claimed) - firsts == {apps[4][1], apps[3][1]}


def test_a_client_another_dispatcher_holds_is_skipped(clean_db, flask_app):
    """Two dispatchers at once (two beat schedulers by mistake, a slow one overtaken): the
    rows one is claiming are locked, and the other claims the rest rather than waiting or
    claiming them twice."""
    now = utcnow()
    backlog = _app_with_clients("backlog", 6, now - datetime.timedelta(hours=1), "b")
    small = _app_with_clients("small", 2, now - datetime.timedelta(seconds=5), "s")
    with psycopg.connect(DATABASE_URL) as other:
        other.execute("SELECT id FROM connector_client WHERE id = ANY(%s) FOR UPDATE",
                      [small])
        claimed, _ = claim_due(10)
        assert sorted(claimed) == backlog
        other.execute("UPDATE connector_client SET leased_until = %s WHERE id = ANY(%s)",
                      [now + datetime.timedelta(minutes=1), small])
    assert claim_due(10)[0] == []  # the other's claim took them


def _claimed(ids) -> list[str]:
    return sorted(c.id for c in ConnectorClient.select(ConnectorClient.id).where(
        ConnectorClient.id.in_(ids) & ConnectorClient.lease_token.is_null(False)))


def test_the_dispatcher_keeps_one_batch_waiting_in_the_broker(clean_db, flask_app,
                                                              monkeypatch):
    """The workers fall behind (every thread busy, none running here): the dispatcher tops
    the broker's queue up to DISPATCH_BATCH and leaves the rest due and unclaimed in the
    database. Before, it sent a batch at every run, so the queue grew without end, each
    app's polls waited in line behind the others', and a poll waiting past its claim was
    sent again."""
    monkeypatch.setitem(flask_app.config, "DISPATCH_BATCH", 10)
    now = utcnow()
    backlog = _app_with_clients("backlog", 25, now - datetime.timedelta(hours=1), "b")
    # Other work queued (action deliveries, webhook lanes) has its own queue: it does not
    # stop the polls.
    tasks.enqueue_many("thingbridge.deliver_action", [("no-such-request", "x")] * 30)
    assert tasks.waiting(tasks.DEFAULT_QUEUE) == 30
    assert dispatch() == 10 and tasks.waiting() == 10
    assert dispatch() == 0 and tasks.waiting() == 10
    assert _claimed(backlog) == backlog[:10]  # the others wait unclaimed, due

    small = _app_with_clients("small", 2, now - datetime.timedelta(seconds=5), "s")
    celery = flask_app.extensions["celery"]
    with celery.connection_or_acquire() as connection:
        queue = connection.SimpleQueue(tasks.POLL_QUEUE)
        for _ in range(4):  # a worker takes four
            queue.get(timeout=5).ack()
    assert dispatch() == 4 and tasks.waiting() == 10
    assert _claimed(small) == small  # their turn came before the backlog's next two
    assert _claimed(backlog) == backlog[:12]


def test_action_retries_take_turns_between_apps(database, flask_app, monkeypatch):
    """The action dispatcher sends due requests (retries, and first attempts a broker outage
    left to it) in turns too: an app with a backlog of retries, each a delivery into a
    receiver that keeps failing, does not hold another app's back until its deadline."""
    from thingbridge.actions import service
    from thingbridge.models import ActionRequest, Thing

    sent = []
    monkeypatch.setattr(tasks, "enqueue_many", lambda task, arg_lists: sent.extend(
        request_id for request_id, _ in arg_lists))
    now = utcnow()

    def requests_of(name, count, first_due):
        app, _ = App.register(name)
        thing = Thing.create(app=app, external_subject_id="alice", created_by=app,
                             main_component_id="c")
        ids = []
        for i in range(count):
            request = service.record_request(app, "alice", thing, "c", "a", {}, deliver=True)
            ActionRequest.update(next_attempt_at=first_due + datetime.timedelta(seconds=i)) \
                .where(ActionRequest.id == request.id).execute()
            ids.append(request.id)
        return ids

    with flask_app.app_context():
        backlog = requests_of("backlog", 12, now - datetime.timedelta(seconds=50))
        small = requests_of("small", 2, now - datetime.timedelta(seconds=5))
        assert service.dispatch_due(5) == 5
        assert sorted(sent) == sorted(small + backlog[:3])
        sent.clear()
        assert service.dispatch_due(100) == 9 and sorted(sent) == sorted(backlog[3:])


def test_a_client_of_a_connector_no_longer_installed_stops_nobodys_polls(clean_db, flask_app):
    """Its type has no poll interval: the claim failed on it and sent nothing for any app, at
    every dispatch (with turns, it is in every batch). It is claimed like the others, and its
    poll says what is wrong."""
    from thingbridge_workers.polling import poll

    now = utcnow()
    others = _app_with_clients("others", 3, now - datetime.timedelta(minutes=1), "o")
    [gone] = _app_with_clients("gone", 1, now - datetime.timedelta(minutes=2), "g")
    ConnectorClient.update(type_id="uninstalled").where(ConnectorClient.id == gone).execute()
    claimed, token = claim_due(10)
    assert sorted(claimed) == sorted(others + [gone])
    assert poll(gone, token) == "error"
    client = ConnectorClient.get_by_id(gone)
    assert (client.status, client.status_reason) == ("ERROR",
                                                     "connector uninstalled is not installed")


def test_claims_the_broker_refused_to_take_are_let_go_at_once(clean_db, flask_app,
                                                               monkeypatch):
    """The broker fails between the count and the sends (it stopped, or its memory is full):
    the claims no worker took are released, so the next dispatch after the broker is back
    sends them, rather than wait out their leases (up to a minute) with nothing sent. One a
    worker took from a task sent before the failure keeps its lease: released, it would be
    claimed and polled a second time while its poll runs."""
    from kombu.exceptions import OperationalError

    now = utcnow()
    ids = _app_with_clients("app", 3, now - datetime.timedelta(minutes=1), "c")

    taken = []

    def refused(task_name, arg_lists):
        # The first task went out and a worker took its client; then the broker failed.
        client_id, token = arg_lists[0]
        taken.append(lifecycle.take(client_id, token).id)
        raise OperationalError("Error 111 connecting to the broker")

    monkeypatch.setattr(tasks, "enqueue_many", refused)
    with pytest.raises(OperationalError):
        dispatch()
    assert _claimed(ids) == taken  # the poll under way keeps its lease; the others are free
    lifecycle.release(ConnectorClient.get_by_id(taken[0]), next_poll_at=now)
    monkeypatch.undo()
    assert dispatch() == 3 and _claimed(ids) == ids


def test_polls_sent_at_once_respect_the_room_in_the_queue_too(api, flask_app, monkeypatch,
                                                              owm_sim):
    """A client's first poll is sent at its creation, but not into a full polls queue: an app
    creating thousands of clients at once would put their polls ahead of every other app's.
    It stays due, for the dispatcher's turns."""
    from flows import owm_client

    monkeypatch.setitem(flask_app.config, "DISPATCH_BATCH", 2)
    first = owm_client(api, "Berlin")
    assert tasks.waiting() == 1
    owm_client(api.as_subject("bob"), "Paris")
    assert tasks.waiting() == 2
    third = owm_client(api.as_subject("carol"), "Rome")
    assert tasks.waiting() == 2  # full: left to the dispatcher
    assert ConnectorClient.get_by_id(third).next_poll_at <= utcnow()
    assert ConnectorClient.get_by_id(first).next_poll_at <= utcnow()
