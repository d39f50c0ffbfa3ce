"""The ``brokers`` fixture: the three shared brokers behind test-only names, each with a
consumer, and EVENT_BROKERS pointing at them (in this process; workers get ``.setting``)."""

from __future__ import annotations

import pytest
import redis
from broker_helpers import AmqpQueue, MqttSubscriber, stream_envelopes, unique
from helpers import AMQP_URL, BROKER_URL, MQTT_URL


class Brokers:
    def __init__(self):
        self.exchange, self.stream, self.prefix = (unique("tb-test-ex"), unique("tb-test-s"),
                                                   unique("tb-test"))
        self.amqp_url = f"{AMQP_URL}?exchange={self.exchange}"
        self.redis_url = f"{BROKER_URL}?stream={self.stream}"
        self.mqtt_url = f"{MQTT_URL}?prefix={self.prefix}/"
        self.setting = ",".join([self.amqp_url, self.redis_url, self.mqtt_url])
        self.queue = AmqpQueue(self.exchange)
        self.subscriber = MqttSubscriber(MQTT_URL, f"{self.prefix}/#")

    def received(self) -> dict[str, list[dict]]:
        """Every envelope each broker's consumer has got so far, in arrival order."""
        return {"amqp": self.queue.envelopes(),
                "redis": stream_envelopes(BROKER_URL, self.stream),
                "mqtt": self.subscriber.envelopes()}

    def close(self) -> None:
        self.queue.delete()
        self.subscriber.close()
        client = redis.Redis.from_url(BROKER_URL)
        client.delete(self.stream)
        client.close()


@pytest.fixture
def brokers(flask_app, clean_db, monkeypatch):
    from thingbridge.outbox import publishers

    found = Brokers()
    monkeypatch.setitem(flask_app.config, "EVENT_BROKERS", found.setting)
    yield found
    publishers.close_all()
    found.close()
