"""Broker publishing as deployed: API changes -> outbox -> beat's dispatcher -> real Celery
workers -> RabbitMQ, Redis and Mosquitto, including a RabbitMQ outage in the middle."""

import pytest
from broker_helpers import ids, rabbitmq_stopped, stream_envelopes
from helpers import BROKER_URL, LAMP, wait_until

from thingbridge.models import PublisherCursor
from thingbridge.outbox import publishers

THINGS = "/api/v1/things"
pytestmark = pytest.mark.slow


def feed(api) -> list[dict]:
    return api.get("/api/v1/events?limit=500").json["events"]


def test_api_changes_reach_every_broker_through_workers(api, brokers, start_worker):
    start_worker(beat=True, concurrency=4, env={"THINGBRIDGE_EVENT_BROKERS": brokers.setting})
    alice, bob = api, api.as_subject("bob")
    for value in ("10", "20"):
        thing_id = alice.post(THINGS, json=LAMP).json["Id"]
        bob.post(THINGS, json=LAMP)
        alice.put(f"{THINGS}/{thing_id}/components/switch/properties/level",
                  json={"value": value})
    expected = feed(api)
    assert [e["type"] for e in expected[:3]] == [
        "thing.created", "thing.created", "thing.property_changed"]
    wait_until(lambda: all(len(got) >= len(expected) for got in brokers.received().values()),
               timeout=60, message="every broker has every event")
    for broker, got in brokers.received().items():
        assert got == expected, broker  # the feed's envelopes, in id order, once each
    topics = brokers.subscriber.topics()
    assert topics[:3] == [f"{brokers.prefix}/thing/created", f"{brokers.prefix}/thing/created",
                          f"{brokers.prefix}/thing/property_changed"]
    routing = [m.delivery_info["routing_key"] for m in brokers.queue.messages()]
    assert routing == [e["type"] for e in expected]


def test_rabbitmq_outage_delays_publishing_then_the_backlog_follows(api, brokers, start_worker):
    start_worker(beat=True, env={"THINGBRIDGE_EVENT_BROKERS": brokers.setting})
    name = publishers.configured_names(brokers.amqp_url)[0]
    api.post(THINGS, json=LAMP)
    wait_until(lambda: len(brokers.queue.envelopes()) == 1, message="first event")

    def amqp_cursor():
        return PublisherCursor.get((PublisherCursor.publisher == name)
                                   & (PublisherCursor.app == api.model.id))

    with rabbitmq_stopped():
        for _ in range(3):
            api.post(THINGS, json=LAMP)  # the API does not wait for any broker
        wait_until(lambda: amqp_cursor().failures >= 1, timeout=60, message="failure recorded")
        assert amqp_cursor().last_seq == 1 and amqp_cursor().last_error
        # The other brokers are not held up by the one that is down.
        wait_until(lambda: len(stream_envelopes(BROKER_URL, brokers.stream)) == 4,
                   message="Redis unaffected")
    wait_until(lambda: len(brokers.queue.envelopes()) >= 4, timeout=90, message="backlog")
    assert ids(brokers.queue.envelopes(), api.model.id) == [1, 2, 3, 4]
    wait_until(lambda: amqp_cursor().last_seq == 4, message="cursor caught up")
    assert amqp_cursor().failures == 0 and amqp_cursor().last_error is None
