"""Broker publishers on their own, against the real RabbitMQ, Redis and Mosquitto: mapping of
events to exchanges, streams and topics, confirms, and connections that outlive a broker."""

import json

import amqp
import pytest
import redis
from broker_helpers import (
    AmqpQueue,
    MqttSubscriber,
    free_port,
    mosquitto_server,
    rabbitmq_stopped,
    redis_server,
    stream_envelopes,
    unique,
)
from helpers import AMQP_URL, BROKER_URL, MQTT_URL, wait_until

from thingbridge.outbox import publishers
from thingbridge.outbox.publishers.base import redact


def envelopes(types, app="app-1", start=1):
    return [{"id": start + i, "type": t, "occurred_at": "2026-11-23T09:30:00.000000Z",
             "app": app, "external_subject_id": "alice", "data": {"n": start + i}}
            for i, t in enumerate(types)]


TYPES = ["thing.created", "thing.property_changed", "action.requested", "thing.deleted",
         "connector.client.status_changed"]


@pytest.fixture(autouse=True)
def _close_publishers():
    yield
    publishers.close_all()


def only(setting: str):
    (publisher,) = publishers.configured(setting).values()
    return publisher


def test_names_hide_passwords_and_bad_settings_fail():
    setting = "amqp://tb:s3cret@rabbit:5672/iot?exchange=x, mqtt://broker , redis://:pw@r:6379/0"
    assert publishers.configured_names(setting) == [
        "amqp://tb@rabbit:5672/iot?exchange=x", "mqtt://broker", "redis://r:6379/0"]
    assert publishers.configured_names("") == []
    assert redact("mqtts://u:p@[::1]:8883") == "mqtts://u@[::1]:8883"
    with pytest.raises(ValueError, match="unsupported scheme 'kafka'"):
        publishers.configured_names("kafka://k:9092")
    with pytest.raises(ValueError, match="configured twice"):
        publishers.configured_names("redis://a:1@r/0,redis://a:2@r/0")


def test_amqp_routing_key_is_the_type_and_messages_are_persistent_json():
    exchange = unique("tb-test-ex")
    everything, things = AmqpQueue(exchange), AmqpQueue(exchange, binding="thing.#")
    try:
        publisher = only(f"{AMQP_URL}?exchange={exchange}")
        sent = envelopes(TYPES)
        publisher.publish(sent)
        received = everything.messages()
        assert [json.loads(m.body) for m in received] == sent
        assert [m.delivery_info["routing_key"] for m in received] == TYPES
        first = received[0]
        assert first.properties["message_id"] == "app-1:1"
        assert first.properties["content_type"] == "application/json"
        assert first.properties["delivery_mode"] == 2
        assert first.properties["application_headers"] == {"app": "app-1", "event_id": 1}
        assert [e["type"] for e in things.envelopes()] == [
            "thing.created", "thing.property_changed", "thing.deleted"]
    finally:
        everything.delete()
        things.delete()


def test_redis_stream_entries_carry_app_id_type_and_envelope():
    stream = unique("tb-test-stream")
    publisher = only(f"{BROKER_URL}?stream={stream}&maxlen=1000")
    try:
        sent = envelopes(TYPES)
        publisher.publish(sent[:2])
        publisher.publish(sent[2:])
        assert stream_envelopes(BROKER_URL, stream) == sent
    finally:
        publisher._client.delete(stream)


def test_mqtt_topic_is_the_type_with_slashes_under_the_prefix():
    prefix = unique("tb-test")
    subscriber = MqttSubscriber(MQTT_URL, f"{prefix}/#")
    try:
        publisher = only(f"{MQTT_URL}?prefix={prefix}")  # the slash is added
        sent = envelopes(TYPES)
        publisher.publish(sent)
        # The subscriber was subscribed (SUBACK) before publishing and QoS 1 holds end to end.
        wait_until(lambda: len(subscriber.received) == len(sent), message="MQTT messages")
        assert subscriber.envelopes() == sent
        assert subscriber.topics() == [
            f"{prefix}/thing/created", f"{prefix}/thing/property_changed",
            f"{prefix}/action/requested", f"{prefix}/thing/deleted",
            f"{prefix}/connector/client/status_changed"]
    finally:
        subscriber.close()


# Each client library reports a refused connection its own way; nothing else (a bug's
# TypeError, say) may pass for it.
@pytest.mark.parametrize("url, error", [
    ("amqp://guest:guest@127.0.0.1:{port}/", ConnectionRefusedError),
    ("redis://127.0.0.1:{port}/0", redis.exceptions.ConnectionError),
    ("mqtt://127.0.0.1:{port}", ConnectionRefusedError)])
def test_an_unreachable_broker_raises(url, error):
    publisher = only(url.format(port=free_port()))
    with pytest.raises(error):
        publisher.publish(envelopes(["thing.created"]))
    assert not publisher.connected()


def test_amqp_connection_is_reestablished_after_a_rabbitmq_restart():
    exchange = unique("tb-test-ex")
    queue = AmqpQueue(exchange)
    try:
        publisher = only(f"{AMQP_URL}?exchange={exchange}")
        publisher.publish(envelopes(["thing.created"]))
        with rabbitmq_stopped():
            pass
        # The kept connection died while idle: the batch goes out on a new one, no error.
        publisher.publish(envelopes(["thing.updated"], start=2))
        with rabbitmq_stopped():
            # Refused or reset (socket errors), or closed by the broker (AMQP errors).
            with pytest.raises((OSError, amqp.exceptions.AMQPError)):
                publisher.publish(envelopes(["thing.updated"], start=3))
        publisher.publish(envelopes(["thing.deleted"], start=4))
        # The durable queue kept what was confirmed across both restarts.
        assert [e["id"] for e in queue.envelopes()] == [1, 2, 4]
    finally:
        queue.delete()


def test_redis_and_mqtt_publishers_survive_a_restart_of_their_server(tmp_path):
    redis_proc, mqtt_proc = redis_server(tmp_path).start(), mosquitto_server(tmp_path).start()
    try:
        redis_url = f"redis://127.0.0.1:{redis_proc.port}/0"
        redis_pub = only(f"{redis_url}?stream=s")
        mqtt_pub = only(f"mqtt://127.0.0.1:{mqtt_proc.port}?prefix=p")
        for publisher in (redis_pub, mqtt_pub):
            publisher.publish(envelopes(["thing.created"]))
        redis_proc.kill()
        mqtt_proc.kill()
        redis_proc.start()
        mqtt_proc.start()
        # The kept connections died with the servers: publish reconnects by itself.
        for publisher in (redis_pub, mqtt_pub):
            publisher.publish(envelopes(["thing.updated"], start=2))
            assert publisher.connected()
        assert [e["id"] for e in stream_envelopes(redis_url, "s")] == [1, 2]
    finally:
        redis_proc.kill()
        mqtt_proc.kill()
