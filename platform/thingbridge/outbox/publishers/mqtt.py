"""MQTT (Mosquitto and others): QoS 1, topic = event type with dots as slashes.

paho runs its network loop in a thread; a batch is handed to it at once and the publisher
waits for every PUBACK. After any failure the client is thrown away rather than left to
paho's automatic reconnect, which would send messages queued while disconnected later and
out of order with the retry.
"""

from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as mqtt

from thingbridge.http.watchdog import shut
from thingbridge.outbox.events import body
from thingbridge.outbox.publishers.base import TIMEOUT, Publisher


class MqttPublisher(Publisher):
    options = ("prefix",)

    def __init__(self, url: str):
        super().__init__(url)
        prefix = self.params.get("prefix", "")
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._client: mqtt.Client | None = None

    def topic(self, event_type: str) -> str:
        return self.prefix + event_type.replace(".", "/")

    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected()

    def connect(self) -> None:
        # A unique client id per connection: a broker disconnects the older of two clients
        # that share an id, and each worker process has its own connection.
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"thingbridge-{uuid.uuid4().hex[:16]}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.max_inflight_messages_set(100)
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.secure:
            client.tls_set()
        answered, outcome = threading.Event(), {}

        def on_connect(_client, _userdata, _flags, reason_code, _properties):
            outcome["reason"] = reason_code
            answered.set()

        client.on_connect = on_connect
        client.connect(self.host, self.port or (8883 if self.secure else 1883), keepalive=30)
        client.loop_start()
        self._client = client
        if not answered.wait(TIMEOUT):
            raise TimeoutError(f"no CONNACK within {TIMEOUT:g}s")
        if outcome["reason"].is_failure:
            raise ConnectionError(f"connection refused: {outcome['reason']}")

    def send(self, envelopes: list[dict]) -> None:
        client = self._client
        infos = [client.publish(self.topic(e["type"]), body(e), qos=1) for e in envelopes]
        deadline = time.monotonic() + TIMEOUT
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise TimeoutError(f"no PUBACK within {TIMEOUT:g}s")

    def cut(self) -> None:
        client = self._client
        sock = client.socket() if client is not None else None
        if sock is not None:
            shut(sock)

    def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            finally:
                client.loop_stop()
