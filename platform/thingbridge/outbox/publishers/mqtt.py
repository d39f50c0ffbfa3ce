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

LOST_CHECK = 0.1  # seconds between looks at the connection while waiting for a PUBACK


class MqttPublisher(Publisher):
    options = ("prefix",)

    def __init__(self, url: str):
        super().__init__(url)
        prefix = self.params.get("prefix", "")
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._client: mqtt.Client | None = None
        self._lost = threading.Event()  # the current connection ended

    def topic(self, event_type: str) -> str:
        return self.prefix + event_type.replace(".", "/")

    def connected(self) -> bool:
        return (self._client is not None and not self._lost.is_set()
                and self._client.is_connected())

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
        # This connection's own: a late callback of the one before must not end it.
        answered, outcome, lost = threading.Event(), {}, threading.Event()

        def on_connect(_client, _userdata, _flags, reason_code, _properties):
            outcome["reason"] = reason_code
            answered.set()

        def on_disconnect(_client, _userdata, _flags, _reason_code, _properties):
            # paho reports a connection the broker closed as "Unspecified error": that it
            # ended is what tells, and a wait for CONNACK or PUBACK stops at once.
            lost.set()
            answered.set()

        client.on_connect, client.on_disconnect = on_connect, on_disconnect
        port = self.port or (8883 if self.secure else 1883)
        address = f"{self.host}:{port}"
        try:
            client.connect(self.host, port, keepalive=30)
        except ConnectionRefusedError:
            raise ConnectionRefusedError(f"broker down: nothing accepts connections at "
                                         f"{address} (connection refused)") from None
        client.loop_start()
        self._client, self._lost = client, lost
        if not answered.wait(TIMEOUT):
            raise TimeoutError(f"no CONNACK within {TIMEOUT:g}s")
        if "reason" not in outcome:
            raise ConnectionResetError(f"the broker at {address} closed the connection "
                                       "before accepting it (CONNACK)")
        if outcome["reason"].is_failure:
            raise self.refusal(outcome["reason"])

    def refusal(self, reason) -> Exception:
        """What a CONNACK that refuses says: the login (MQTT 3.1.1 codes 4 and 5, 0x86 and
        0x87 as paho reports them) or anything else."""
        if reason.value in (0x86, 0x87):
            who = f"user {self.username}" if self.username else "anonymous login"
            return PermissionError(f"the broker refused the {who}: {reason}")
        return ConnectionRefusedError(f"the broker refused the connection: {reason}")

    def send(self, envelopes: list[dict]) -> None:
        client = self._client
        infos = [client.publish(self.topic(e["type"]), body(e), qos=1) for e in envelopes]
        deadline = time.monotonic() + TIMEOUT
        for done, info in enumerate(infos):
            while not info.is_published():
                if self._lost.is_set() or info.rc == mqtt.MQTT_ERR_NO_CONN:
                    raise ConnectionResetError(
                        f"the broker closed the connection before confirming the batch "
                        f"({done} of {len(infos)} PUBACKs)")
                if (left := deadline - time.monotonic()) <= 0:
                    raise TimeoutError(f"no PUBACK within {TIMEOUT:g}s")
                # In slices, so that a connection lost meanwhile ends the wait.
                info.wait_for_publish(min(left, LOST_CHECK))

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
