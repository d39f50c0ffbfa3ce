"""AMQP 0-9-1 (RabbitMQ): a durable topic exchange, routing key = event type.

py-amqp directly rather than kombu's producer: kombu's confirm mode waits for each message's
confirm before sending the next, while here a batch is sent at once and its confirms are
collected together (RabbitMQ acks them cumulatively).
"""

from __future__ import annotations

import socket
import time
from urllib.parse import unquote

import amqp
from amqp import spec
from amqp.transport import DEFAULT_SOCKET_SETTINGS, SSLTransport, TCPTransport

from thingbridge.http.watchdog import shut
from thingbridge.outbox.events import body
from thingbridge.outbox.publishers.base import TIMEOUT, Publisher

DEFAULT_EXCHANGE = "thingbridge.events"


class Nacked(Exception):
    pass


class BrokerBlocked(ConnectionError):
    """RabbitMQ stopped reading what this connection publishes (a memory or disk alarm)."""


# The TCP options py-amqp means to set, by their socket constants.
_TCP_OPTIONS = {getattr(socket, name): value for name, value in DEFAULT_SOCKET_SETTINGS.items()
                if hasattr(socket, name)}


class _OwnOptionsOnly:
    """py-amqp also reads every other TCP option the kernel knows and writes it back; on a
    busy machine one of those writes is refused now and then (EINVAL), and the connection
    failed. Only the options it means to set are set."""

    def _get_tcp_socket_defaults(self, sock):
        return dict(_TCP_OPTIONS)


class _TCPTransport(_OwnOptionsOnly, TCPTransport):
    pass


class _SSLTransport(_OwnOptionsOnly, SSLTransport):
    pass


class _Connection(amqp.Connection):
    """py-amqp's connection, reading connection.blocked's reason, which it drops: RabbitMQ
    says there which alarm holds publishers back ("low on memory", "low on disk"); and
    setting only the TCP options it means to (``_OwnOptionsOnly``)."""

    _METHODS = {**amqp.Connection._METHODS,
                spec.Connection.Blocked: spec.method(spec.Connection.Blocked, "s")}

    def Transport(self, host, connect_timeout, ssl=False, read_timeout=None,  # noqa: N802
                  write_timeout=None, **kwargs):  # py-amqp's name and arguments
        transport = _SSLTransport if ssl else _TCPTransport
        return transport(host, connect_timeout=connect_timeout, ssl=ssl,
                         read_timeout=read_timeout, write_timeout=write_timeout, **kwargs)

    def _on_blocked(self, reason: str = "no reason given") -> None:
        if self.on_blocked:
            self.on_blocked(reason)


class AmqpPublisher(Publisher):
    options = ("exchange",)

    def __init__(self, url: str):
        super().__init__(url)
        self.exchange = self.params.get("exchange") or DEFAULT_EXCHANGE
        vhost = unquote(self.path[1:]) if len(self.path) > 1 else "/"
        self._settings = dict(host=f"{self.host}:{self.port or (5671 if self.secure else 5672)}",
                              userid=self.username or "guest",
                              password=self.password or "guest", virtual_host=vhost,
                              ssl=self.secure, connect_timeout=TIMEOUT,
                              read_timeout=TIMEOUT, write_timeout=TIMEOUT)
        self._conn: amqp.Connection | None = None
        self._connecting: amqp.Connection | None = None
        self._channel = None
        self._tag = 0  # the channel's last delivery tag: confirms refer to these
        self._unconfirmed: set[int] = set()
        self._nacked = False
        self._blocked: str | None = None  # why the broker blocked this connection

    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected

    def connect(self) -> None:
        self._blocked = None
        conn = self._connecting = _Connection(**self._settings, on_blocked=self._on_blocked,
                                              on_unblocked=self._on_unblocked)
        try:
            conn.connect()
            channel = conn.channel()
            channel.exchange_declare(self.exchange, "topic", durable=True, auto_delete=False)
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
        except Exception:
            _quietly_close(conn)
            raise
        finally:
            self._connecting = None
        self._conn, self._channel, self._tag = conn, channel, 0

    def send(self, envelopes: list[dict]) -> None:
        self._unconfirmed, self._nacked = set(), False
        for envelope in envelopes:
            message = amqp.Message(
                body(envelope), content_type="application/json", content_encoding="utf-8",
                delivery_mode=2, message_id=f"{envelope['app']}:{envelope['id']}",
                type=envelope["type"], app_id="thingbridge",
                application_headers={"app": envelope["app"], "event_id": envelope["id"]})
            self._channel.basic_publish(message, exchange=self.exchange,
                                        routing_key=envelope["type"])
            self._tag += 1
            self._unconfirmed.add(self._tag)
        deadline = time.monotonic() + TIMEOUT
        while self._unconfirmed and not self._nacked:
            if self._blocked is not None:
                # No confirmation comes before the alarm clears, which may take far longer
                # than the attempt: say so now and back off, rather than wait out its deadline.
                raise BrokerBlocked(f"broker blocked: {self._blocked}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._unconfirmed)} messages not confirmed "
                                   f"within {TIMEOUT:g}s")
            try:
                self._conn.drain_events(timeout=remaining)
            except TimeoutError:  # a read timeout: the loop re-checks the deadline
                continue
        if self._nacked:
            raise Nacked("the broker refused (nacked) a message of the batch")

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked = True

    def _on_blocked(self, reason: str) -> None:
        self._blocked = reason

    def _on_unblocked(self) -> None:
        self._blocked = None

    def disconnect(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            _quietly_close(conn)

    def cut(self) -> None:
        for conn in (self._connecting, self._conn):
            sock = getattr(getattr(conn, "transport", None), "sock", None)
            if sock is not None:
                shut(sock)


def _quietly_close(conn: amqp.Connection) -> None:
    try:
        conn.close()
    except Exception:  # closing a broken connection raises; only its socket matters
        try:
            conn.collect()
        except Exception:
            pass
