"""Consumers and throwaway servers for the message-broker tests: an AMQP queue bound to a
test exchange, a Redis stream reader, an MQTT subscriber, and private redis-server and
mosquitto processes that a test may kill and restart (never the shared ones)."""

from __future__ import annotations

import contextlib
import getpass
import json
import signal
import socket
import subprocess
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import amqp
import paho.mqtt.client as mqtt
import redis
from helpers import AMQP_URL, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def dedupe(envelopes: list[dict]) -> list[tuple[str, int]]:
    """(app, id) in arrival order, repeats dropped: what a deduping consumer processes."""
    seen, out = set(), []
    for env in envelopes:
        key = (env["app"], env["id"])
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def ids(envelopes: list[dict], app: str) -> list[int]:
    return [env["id"] for env in envelopes if env["app"] == app]


# --- AMQP --------------------------------------------------------------------------------

class AmqpQueue:
    """A durable queue bound to a test exchange; survives a RabbitMQ stop_app/start_app."""

    def __init__(self, exchange: str, binding: str = "#"):
        self.exchange, self.binding, self.queue = exchange, binding, unique("tb-test-q")
        self.received: list[amqp.Message] = []
        self._conn = None
        self._channel().queue_declare(self.queue, durable=True, auto_delete=False)
        self._channel().queue_bind(self.queue, exchange, binding)

    def _channel(self):
        if self._conn is None or not self._conn.connected:
            parts = urlsplit(AMQP_URL)
            self._conn = amqp.Connection(f"{parts.hostname}:{parts.port}", parts.username,
                                         parts.password, connect_timeout=5)
            self._conn.connect()
            self._ch = self._conn.channel()
            # Declared here too, so a queue can be bound before anything was published.
            self._ch.exchange_declare(self.exchange, "topic", durable=True, auto_delete=False)
        return self._ch

    def messages(self) -> list[amqp.Message]:
        """Everything received so far (fetches what is waiting in the queue first)."""
        try:
            self._channel().basic_qos(0, 0, False)  # a round trip: is the connection alive?
        except (OSError, amqp.exceptions.AMQPError):
            self._conn = None  # RabbitMQ was restarted under it
        channel = self._channel()
        while (message := channel.basic_get(self.queue)) is not None:
            channel.basic_ack(message.delivery_tag)
            self.received.append(message)
        return self.received

    def envelopes(self) -> list[dict]:
        return [json.loads(m.body) for m in self.messages()]

    def delete(self) -> None:
        channel = self._channel()
        channel.queue_delete(self.queue)
        channel.exchange_delete(self.exchange)
        self._conn.close()


@contextlib.contextmanager
def rabbitmq_stopped():
    """Stop the RabbitMQ application (the node stays up, port 5672 closes); always restart it."""
    port = urlsplit(AMQP_URL).port
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=60)
    try:
        assert not port_open(port), "rabbitmqctl stop_app left the AMQP port open"
        yield
    finally:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)
        wait_until(lambda: port_open(port), timeout=60, message="RabbitMQ back")


@contextlib.contextmanager
def rabbitmq_vhost():
    """A RabbitMQ virtual host of the test's own (guest may use it), deleted after: queues
    such as Celery's fixed ``celery`` stay out of everyone else's."""
    name = unique("thingbridge-test")
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, timeout=60)
    try:
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*",
                        ".*"], check=True, timeout=60)
        yield name
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=True, timeout=60)


class FreezableProxy:
    """A TCP proxy to ``port`` on this machine that can freeze: it stops passing bytes either
    way and keeps every connection open, as a stopped process or a link that drops packets
    would. ``close`` ends every connection."""

    def __init__(self, port: int):
        self.target, self._frozen, self._sockets = port, threading.Event(), []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]

    def start(self) -> FreezableProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def freeze(self) -> None:
        self._frozen.set()

    def close(self) -> None:
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if self._frozen.is_set():
                    return  # dropped, and nothing more is read: both ends stay open
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # the peer ended its side: so does the proxy


# --- Redis -------------------------------------------------------------------------------

def stream_envelopes(url: str, stream: str) -> list[dict]:
    client = redis.Redis.from_url(url)
    try:
        entries = client.xrange(stream)
    finally:
        client.close()
    found = []
    for _id, fields in entries:
        env = json.loads(fields[b"event"])
        assert fields[b"app"].decode() == env["app"] and int(fields[b"id"]) == env["id"]
        assert fields[b"type"].decode() == env["type"]
        found.append(env)
    return found


class ServerProcess:
    """A private broker process on a free port, killed (SIGKILL) and restarted at will."""

    def __init__(self, command: list[str], port: int):
        self.command, self.port, self.proc = command, port, None

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.port), timeout=30, message=f"{self.command[0]} up")
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        wait_until(lambda: not port_open(self.port), timeout=10, message="port closed")


def redis_server(folder: Path) -> ServerProcess:
    # appendfsync always: a SIGKILL loses nothing that was acknowledged, like a real
    # deployment that cares about its stream.
    port = free_port()
    return ServerProcess(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                          "--dir", str(folder)], port)


def mosquitto_server(folder: Path, *settings: str) -> ServerProcess:
    """A private Mosquitto; ``settings`` are more lines of its configuration (anonymous
    clients are allowed unless they say otherwise)."""
    port = free_port()
    config = folder / f"mosquitto-{port}.conf"
    # Started as root, Mosquitto would read its files as the user "mosquitto": stay us.
    lines = [f"listener {port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}",
             *settings]
    if not any(line.startswith("allow_anonymous") for line in settings):
        lines.append("allow_anonymous true")
    config.write_text("\n".join(lines) + "\n")
    return ServerProcess(["mosquitto", "-c", str(config)], port)


def mosquitto_password_file(folder: Path, user: str, password: str) -> Path:
    path = folder / "mosquitto-passwords"
    path.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True,
                   timeout=30)
    return path


# --- MQTT --------------------------------------------------------------------------------

class MqttSubscriber:
    """Subscribes (again after every reconnect) and records (topic, envelope)."""

    def __init__(self, url: str, topic_filter: str):
        parts = urlsplit(url)
        self.filter, self.received = topic_filter, []
        self.subscribed = threading.Event()
        self.lock = threading.Lock()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique("tb-test-sub"))
        client.reconnect_delay_set(min_delay=1, max_delay=1)
        client.on_connect = lambda c, *_: c.subscribe(self.filter, qos=1)
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.on_disconnect = lambda *_: self.subscribed.clear()
        client.on_message = self._on_message
        client.connect(parts.hostname, parts.port or 1883, keepalive=30)
        client.loop_start()
        self.client = client
        self.wait_subscribed()

    def _on_message(self, _client, _userdata, message) -> None:
        with self.lock:
            self.received.append((message.topic, json.loads(message.payload)))

    def wait_subscribed(self) -> None:
        wait_until(self.subscribed.is_set, timeout=30, message="MQTT subscription")

    def envelopes(self) -> list[dict]:
        with self.lock:
            return [env for _topic, env in self.received]

    def topics(self) -> list[str]:
        with self.lock:
            return [topic for topic, _env in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
