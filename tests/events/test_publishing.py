"""Publishing cursors and leases against the real brokers, driven in-process: every event,
in order per app, once in the normal case; outages delay and record; lost holders repeat."""

import contextlib
import datetime
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from broker_helpers import (
    AmqpQueue,
    MqttSubscriber,
    dedupe,
    ids,
    mosquitto_password_file,
    mosquitto_server,
    rabbitmq_stopped,
    redis_server,
    stream_envelopes,
    unique,
)
from helpers import AMQP_URL, wait_until
from prometheus_client.parser import text_string_to_metric_families
from raw_receivers import amqp_broker_that_blocks

from thingbridge.db import utcnow
from thingbridge.models import PublisherCursor
from thingbridge.outbox import events, publishers, publishing
from thingbridge.outbox.publishers import base

TYPES = ["thing.created", "thing.updated", "thing.property_changed", "action.requested"]


def emit(app_id: str, count: int, subject="alice") -> None:
    events.emit_many(app_id, [events.Pending(TYPES[i % len(TYPES)], subject, {"n": i})
                              for i in range(count)])


def publish_all() -> int:
    """What beat and the workers do, in this process: claim due pairs, drain each."""
    total = 0
    while claimed := publishing.claim_due():
        for name, app_id, token in claimed:
            total += publishing.drain(name, app_id, token)
    return total


def cursor(app_id: str, name: str | None = None) -> PublisherCursor:
    query = PublisherCursor.select().where(PublisherCursor.app == app_id)
    if name:
        query = query.where(PublisherCursor.publisher == name)
    return query.get()


def test_every_event_reaches_every_broker_once_in_order_per_app(brokers, make_app):
    a, b = make_app("a").model.id, make_app("b").model.id
    for _ in range(3):  # 150 events for a: more than one batch
        emit(a, 50)
        emit(b, 1, subject="bob")
    assert publish_all() == 3 * 153
    wait_until(lambda: len(brokers.subscriber.received) >= 153, message="MQTT messages")
    for broker, got in brokers.received().items():
        assert len(got) == 153, broker  # once each
        assert ids(got, a) == list(range(1, 151)), broker
        assert ids(got, b) == [1, 2, 3], broker
    by_id = {e["id"]: e for e in brokers.received()["redis"] if e["app"] == a}
    assert by_id[3]["type"] == "thing.property_changed" and by_id[3]["data"] == {"n": 2}
    topics = {(e["app"], e["id"]): t for t, e in brokers.subscriber.received}
    assert topics[(a, 3)] == f"{brokers.prefix}/thing/property_changed"
    rows = list(PublisherCursor.select())
    assert len(rows) == 6
    assert {(r.app_id, r.last_seq, r.failures, r.lease_token) for r in rows} == {
        (a, 150, 0, None), (b, 3, 0, None)}

    assert publishing.claim_due() == []  # caught up: nothing to lease
    emit(a, 2)
    assert publish_all() == 3 * 2
    assert ids(brokers.received()["amqp"], a)[-3:] == [150, 151, 152]


def test_apps_publishing_at_once_in_one_process_take_turns(brokers, make_app, flask_app):
    """A worker's threads share the process's publisher of each broker, and py-amqp's
    connection is no two threads': four apps' batches at once confirmed nothing ("Received
    frame 206 while expecting type", a bad file descriptor), what RabbitMQ had taken came
    again with each retry, and a healthy broker was paused as failing. They take turns."""
    apps = [make_app(f"app-{n}").model.id for n in range(4)]
    for app_id in apps:
        emit(app_id, 3 * publishing.BATCH)

    def drain(pair):
        with flask_app.app_context():
            return publishing.drain(*pair)

    claimed = publishing.claim_due()
    assert len(claimed) == 3 * len(apps)
    expected = 3 * len(apps) * 3 * publishing.BATCH
    with ThreadPoolExecutor(len(apps)) as pool:
        published = [sum(pool.map(drain, claimed))]

    def all_published():  # on a slow machine a pair may step aside for a moment
        published.append(publish_all())
        return sum(published) >= expected

    wait_until(all_published, message="every event")
    assert sum(published) == expected
    wait_until(lambda: len(brokers.subscriber.received) >= len(apps) * 3 * publishing.BATCH,
               message="MQTT messages")
    for broker, got in brokers.received().items():
        assert len(got) == len(apps) * 3 * publishing.BATCH, broker  # once each
        for app_id in apps:
            assert ids(got, app_id) == list(range(1, 3 * publishing.BATCH + 1)), broker
    assert all(row.failures == 0 for row in PublisherCursor.select())


def test_without_brokers_dispatch_does_nothing(flask_app, make_app, monkeypatch):
    monkeypatch.setitem(flask_app.config, "EVENT_BROKERS", "")
    emit(make_app().model.id, 3)
    assert publishing.dispatch() == 0
    assert PublisherCursor.select().count() == 0


def test_one_holder_per_publisher_and_app(brokers, api):
    emit(api.model.id, 1)
    name = publishers.configured_names(brokers.amqp_url)[0]
    now = utcnow()
    token = publishing.claim(name, api.model.id, now)
    assert token and publishing.claim(name, api.model.id, now) is None
    assert name not in {c[0] for c in publishing.claim_due()}  # the other brokers are free
    assert not publishing.advance(name, api.model.id, "not-the-token", 1)
    assert publishing.next_batch(name, api.model.id, "not-the-token") is None
    publishing.release(name, api.model.id, token)
    assert publishing.claim(name, api.model.id, utcnow())


def test_backoff_doubles_up_to_a_minute_with_jitter(brokers, api, http):
    emit(api.model.id, 1)
    name = publishers.configured_names(brokers.amqp_url)[0]
    delays = []
    for _ in range(12):
        PublisherCursor.update(next_attempt_at=utcnow()).execute()
        token = publishing.claim(name, api.model.id, utcnow())
        publishing.fail(name, api.model.id, token, "ConnectionRefusedError: down")
        after = utcnow()  # the delay is counted from a moment inside fail(): at most this
        row = cursor(api.model.id, name)
        delays.append((row.next_attempt_at - after).total_seconds())
    assert row.failures == 12 and row.last_error == "ConnectionRefusedError: down"
    assert row.lease_token is None and row.last_seq == 0
    assert all(later > earlier for earlier, later in zip(delays[:6], delays[1:7], strict=True))
    assert max(delays) <= 60.0 and delays[-1] > 30.0
    # Operators see it without reading the table: one app fails on that broker, none on
    # the others.
    scraped = {(s.name, s.labels.get("publisher")): s.value
               for family in text_string_to_metric_families(http.get("/metrics").text)
               for s in family.samples if s.name == "thingbridge_publisher_failing_apps"}
    assert scraped == {("thingbridge_publisher_failing_apps", publisher): float(publisher == name)
                       for publisher in publishers.configured_names(brokers.setting)}


# --- outages: a down broker delays, records, then gets the backlog ---------------------------

def outage_delays_then_backlog(app_id, outage, received_ids):
    """Three events published; five more while the broker is down; then all eight, in order,
    each once."""
    emit(app_id, 3)
    assert publish_all() == 3
    wait_until(lambda: received_ids() == [1, 2, 3], message="first events")
    with outage():
        emit(app_id, 5)  # the changes themselves never wait for a broker
        before = utcnow()
        wait_until(lambda: publish_all() == 0 and cursor(app_id).failures >= 2,
                   message="failed attempts recorded")
        row = cursor(app_id)
        assert row.last_seq == 3 and row.last_error and row.lease_token is None
        assert row.next_attempt_at > before
    wait_until(lambda: publish_all() >= 0 and len(received_ids()) >= 8, message="backlog")
    assert received_ids() == list(range(1, 9))
    row = cursor(app_id)
    assert (row.last_seq, row.failures, row.last_error) == (8, 0, None)


def test_rabbitmq_down_then_up(flask_app, api, monkeypatch):
    queue = AmqpQueue(unique("tb-test-ex"))
    monkeypatch.setitem(flask_app.config, "EVENT_BROKERS", f"{AMQP_URL}?exchange={queue.exchange}")
    try:
        outage_delays_then_backlog(api.model.id, rabbitmq_stopped,
                                   lambda: ids(queue.envelopes(), api.model.id))
    finally:
        publishers.close_all()
        queue.delete()


def test_redis_down_then_up(flask_app, api, monkeypatch, tmp_path):
    server = redis_server(tmp_path).start()  # private: the shared Redis carries Celery's queue
    url = f"redis://127.0.0.1:{server.port}/0"
    monkeypatch.setitem(flask_app.config, "EVENT_BROKERS", f"{url}?stream=events")

    @contextlib.contextmanager
    def killed():
        server.kill()
        yield
        server.start()

    try:
        outage_delays_then_backlog(api.model.id, killed,
                                   lambda: ids(stream_envelopes(url, "events"), api.model.id))
    finally:
        publishers.close_all()
        server.kill()


def test_mosquitto_down_then_up(flask_app, api, monkeypatch, tmp_path):
    server = mosquitto_server(tmp_path).start()
    url = f"mqtt://127.0.0.1:{server.port}"
    monkeypatch.setitem(flask_app.config, "EVENT_BROKERS", f"{url}?prefix=tb")
    subscriber = MqttSubscriber(url, "tb/#")

    @contextlib.contextmanager
    def killed():
        server.kill()
        wait_until(lambda: not subscriber.subscribed.is_set(), message="subscriber cut off")
        yield
        server.start()
        # Without a persistent session the broker keeps nothing for an absent subscriber:
        # be subscribed again before the backlog goes out.
        subscriber.wait_subscribed()

    try:
        outage_delays_then_backlog(api.model.id, killed,
                                   lambda: ids(subscriber.envelopes(), api.model.id))
    finally:
        subscriber.close()
        publishers.close_all()
        server.kill()


def test_mqtt_last_error_says_whether_mosquitto_is_down_refused_the_login_or_dropped_us(
        flask_app, api, monkeypatch, tmp_path):
    """Each failure is recorded at once, in words that tell them apart (before: a refused
    login read "connection refused", and a connection the broker closed waited for its
    PUBACKs until "no PUBACK within 10s", twice)."""
    passwords = mosquitto_password_file(tmp_path, "tb", "right")
    down = mosquitto_server(tmp_path)
    locked = mosquitto_server(tmp_path, "allow_anonymous false", f"password_file {passwords}")
    # Mosquitto closes the connection of a client that sends a packet larger than this.
    strict = mosquitto_server(tmp_path, "max_packet_size 400")
    servers = (down, locked, strict)
    try:
        for server in servers:
            server.start()
        down.kill()
        cases = {
            f"mqtt://127.0.0.1:{down.port}":
                "ConnectionRefusedError: broker down: nothing accepts connections at "
                f"127.0.0.1:{down.port} (connection refused)",
            f"mqtt://tb:wrong@127.0.0.1:{locked.port}":
                "PermissionError: the broker refused the user tb: Not authorized",
            f"mqtt://127.0.0.1:{locked.port}?prefix=anonymous":
                "PermissionError: the broker refused the anonymous login: Not authorized",
            f"mqtt://127.0.0.1:{strict.port}":
                "ConnectionResetError: the broker closed the connection before confirming the "
                "batch (0 of 2 PUBACKs)",
        }
        monkeypatch.setitem(flask_app.config, "EVENT_BROKERS", ",".join(cases))
        events.emit_many(api.model.id, [
            events.Pending("thing.created", "alice", {"pad": "x" * 500}) for _ in range(2)])
        for claim in publishing.claim_due():  # one attempt each, not the retries after it
            publishing.drain(*claim)
        for url, error in cases.items():
            row = cursor(api.model.id, base.redact(url))
            assert (row.last_seq, row.failures, row.last_error) == (0, 1, error), url
    finally:
        publishers.close_all()
        for server in servers:
            server.kill()


# --- holders that die: the batch is published again, consumers dedupe ------------------------

def test_a_holder_that_dies_mid_batch_is_replaced(brokers, api):
    app_id = api.model.id
    emit(app_id, 5)
    dead = publishing.claim_due()
    assert len(dead) == 3
    for name, _app, token in dead:  # each publishes its batch, then dies before advancing
        batch = publishing.next_batch(name, app_id, token)
        publishers.configured(brokers.setting)[name].publish(
            [events.envelope(e) for e in batch])
    assert publishing.claim_due() == []  # leases still held
    # Their leases run out (moved, rather than waited for: the default is a minute).
    PublisherCursor.update(leased_until=utcnow() - datetime.timedelta(seconds=1)).execute()
    successors = publishing.claim_due()
    assert len(successors) == 3 and not {t for *_, t in dead} & {t for *_, t in successors}
    for claim in successors:
        assert publishing.drain(*claim) == 5
    for name, _app, token in dead:  # the late holder can no longer move anything
        assert not publishing.advance(name, app_id, token, 5)
        assert publishing.next_batch(name, app_id, token) is None
    emit(app_id, 2)
    publish_all()
    wait_until(lambda: len(brokers.subscriber.received) >= 12, message="MQTT messages")
    for broker, got in brokers.received().items():
        assert ids(got, app_id) == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6, 7], broker
        assert dedupe(got) == [(app_id, n) for n in range(1, 8)], broker
    message_ids = [m.properties["message_id"] for m in brokers.queue.messages()]
    assert message_ids[0] == message_ids[5] == f"{app_id}:1"  # AMQP consumers dedupe on it


def test_a_batch_that_breaks_half_way_is_published_again_whole(brokers, api, monkeypatch):
    app_id = api.model.id
    emit(app_id, 4)
    publisher = publishers.configured(brokers.setting)[
        publishers.configured_names(brokers.amqp_url)[0]]
    real_send = publisher.send

    def half_then_broken(envelopes):
        real_send(envelopes[:2])
        raise ConnectionResetError("connection reset mid-batch")

    monkeypatch.setattr(publisher, "send", half_then_broken)
    publish_all()  # the other brokers get everything; AMQP got half and failed
    row = cursor(app_id, publisher.name)
    assert row.last_seq == 0 and "mid-batch" in row.last_error
    monkeypatch.setattr(publisher, "send", real_send)  # the network is back
    wait_until(lambda: publish_all() >= 0 and cursor(app_id, publisher.name).last_seq == 4,
               message="retry after backoff")
    got = brokers.received()["amqp"]
    assert ids(got, app_id) == [1, 2, 1, 2, 3, 4]
    assert dedupe(got) == [(app_id, n) for n in range(1, 5)]
    assert ids(brokers.received()["redis"], app_id) == [1, 2, 3, 4]


TRICKLES = {  # the start of an answer, then a byte at a time: every read gets something
    "redis": (b"+", b"x"),
    "amqp": (b"\x01\x00\x00\x00\x01\x00\x00", b"x"),  # a frame header announcing 64 KiB
}


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_broker_that_trickles_is_cut_at_the_attempts_deadline(scheme, servers, make_app,
                                                                 flask_app, monkeypatch):
    """The clients' timeouts bound each read, and a broker that sends a byte now and then
    answers every read: a publish task waited for ever, and its worker process with it."""
    shut_down = threading.Event()
    head, drip = TRICKLES[scheme]

    def trickle(conn):
        try:
            conn.sendall(head)
            for _ in range(600):
                time.sleep(0.1)
                conn.sendall(drip)
        except OSError:
            shut_down.set()

    server = servers(trickle)
    url = {"redis": f"redis://127.0.0.1:{server.port}/0",
           "amqp": f"amqp://guest:guest@127.0.0.1:{server.port}/"}[scheme]
    monkeypatch.setitem(flask_app.config, "EVENT_BROKERS", url)
    monkeypatch.setattr(base, "ATTEMPT", 2)
    app_id = make_app("a").model.id
    emit(app_id, 3)
    [(name, claimed_app, token)] = publishing.claim_due()
    stuck = publishers.configured(url)[name]
    assert publishing.drain(name, claimed_app, token) == 0
    held = cursor(app_id, name)
    assert held.failures == 1 and held.lease_token is None and held.last_seq == 0
    assert "no confirmation within 2s" in held.last_error
    assert shut_down.wait(30)  # the broker saw its connection end
    assert publishers.configured(url)[name] is not stuck  # a new one for the next attempt


def test_a_rabbitmq_alarm_is_recorded_as_broker_blocked(servers, make_app, flask_app,
                                                     monkeypatch):
    """RabbitMQ under a memory or disk alarm blocks publishing connections (connection.blocked)
    and confirms nothing until it clears: the attempt waited for its deadline and recorded
    only "no confirmation within ...". The broker here is a raw socket that blocks at the first
    publish, so the shared RabbitMQ's alarms are never touched."""
    server = servers(amqp_broker_that_blocks("low on memory"))
    url = f"amqp://guest:guest@127.0.0.1:{server.port}/"
    monkeypatch.setitem(flask_app.config, "EVENT_BROKERS", url)
    # Shorter than the default, so that a publisher that waits for confirms fails fast.
    monkeypatch.setattr(base, "ATTEMPT", 5)
    app_id = make_app("a").model.id
    emit(app_id, 3)
    [(name, claimed_app, token)] = publishing.claim_due()
    assert publishing.drain(name, claimed_app, token) == 0
    row = cursor(app_id, name)
    assert (row.last_seq, row.failures, row.lease_token) == (0, 1, None)
    assert row.last_error == "BrokerBlocked: broker blocked: low on memory"


def silent_broker(servers, flask_app, monkeypatch, attempt: float):
    """A Redis broker that takes a connection and never answers, the only one configured,
    with publish attempts cut after ``attempt`` seconds."""
    def silent(conn):
        conn.recv(1024)
        time.sleep(30)

    server = servers(silent)
    monkeypatch.setitem(flask_app.config, "EVENT_BROKERS", f"redis://127.0.0.1:{server.port}/0")
    monkeypatch.setattr(base, "ATTEMPT", attempt)
    return server


def test_a_failing_broker_is_tried_once_per_pause_not_once_per_app(servers, make_app,
                                                                    flask_app, monkeypatch):
    """Each (broker, app) pair made an attempt of its own: a broker that does not answer took
    the worker processes that polls and webhooks share, up to an attempt's deadline each."""
    server = silent_broker(servers, flask_app, monkeypatch, attempt=1)
    apps = [make_app(f"app-{n}").model.id for n in range(3)]
    for app_id in apps:
        emit(app_id, 1)
    try:
        claimed = publishing.claim_due()
        assert len(claimed) == 3
        for name, app_id, token in claimed:
            assert publishing.drain(name, app_id, token) == 0
        assert server.connections == 1  # one attempt; the other two apps waited for it
        errors = sorted(cursor(app_id).last_error for app_id in apps)
        assert sum("not tried: this worker's last attempt failed" in e for e in errors) == 2
        assert all(cursor(app_id).failures == 1 for app_id in apps)
    finally:
        publishers.close_all()


def test_a_pair_that_waits_for_a_silent_brokers_attempt_steps_aside(servers, make_app,
                                                                      flask_app, monkeypatch):
    """Another app's batch holds the process's turn at a broker that does not answer: this
    pair waits its TURN_WAIT, then steps aside until that attempt ends (no failure noted),
    instead of coming back at every dispatch and holding a worker thread each time."""
    server = silent_broker(servers, flask_app, monkeypatch, attempt=6)
    first, second = (make_app(f"app-{n}").model.id for n in range(2))
    emit(first, 1)
    emit(second, 1)
    claimed = {app_id: (name, app_id, token) for name, app_id, token in publishing.claim_due()}

    def drain_first():
        with flask_app.app_context():
            publishing.drain(*claimed[first])

    holder = threading.Thread(target=drain_first)
    holder.start()
    try:
        wait_until(lambda: server.connections == 1, message="the first attempt under way")
        before = utcnow()
        assert publishing.drain(*claimed[second]) == 0
        row = cursor(second)
        assert (row.failures, row.last_error, row.lease_token) == (0, None, None)
        # Until that attempt's end (6 s from its start, before ``before``): more than the
        # moment a pair queued behind healthy batches steps aside for.
        assert (before + datetime.timedelta(seconds=publishing.TURN_WAIT) < row.next_attempt_at
                <= before + datetime.timedelta(seconds=6.5))
        assert second not in {app_id for _, app_id, _ in publishing.claim_due()}
    finally:
        holder.join(30)
        publishers.close_all()
    assert "no confirmation within 6s" in cursor(first).last_error


def test_the_amqp_connection_sets_only_the_tcp_options_it_means_to():
    """py-amqp read every TCP option of a new socket and wrote it back; on a busy machine the
    kernel refused one of those writes now and then (EINVAL) and the attempt failed at once
    (the trickle test above saw it). Only its own settings are written now: nothing is read
    back (the socket is not even needed to know them)."""
    import socket

    from amqp.transport import DEFAULT_SOCKET_SETTINGS

    from thingbridge.outbox.publishers.amqp import _Connection

    transport = _Connection(host="127.0.0.1:1").Transport("127.0.0.1:1", 1)
    assert transport._get_tcp_socket_defaults(None) == {
        getattr(socket, name): value for name, value in DEFAULT_SOCKET_SETTINGS.items()}
