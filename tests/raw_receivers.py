"""Receivers written on raw sockets, for answers a framework would not give: trickling,
hanging, compressed bombs, counted connections, an AMQP broker under an alarm."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from amqp.serialization import dumps


class RawServer:
    """A TCP listener on loopback that runs ``handler(conn)`` for every connection."""

    def __init__(self, handler):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.handler = handler
        self.open: set[socket.socket] = set()
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            self.open.discard(conn)
            conn.close()

    def url(self, host="127.0.0.1"):
        return f"http://{host}:{self.port}/hook"

    def close(self):
        """Stop listening and end every connection: a close alone leaves a thread blocked in
        accept() holding the port, which then hands one more connection, of any later test,
        to this handler (a trickle of headers, say)."""
        for sock in (self.sock, *list(self.open)):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected, or already closed by its handler
        self.accepting.join(timeout=5)
        self.sock.close()


def read_request(stream) -> bytes | None:
    line = stream.readline()
    if not line:
        return None
    length = 0
    while line not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        line = stream.readline()
    return stream.read(length)


def answering(status_line: bytes, headers: bytes = b"", body: bytes = b""):
    def handler(conn):
        stream = conn.makefile("rb")
        while read_request(stream) is not None:
            conn.sendall(b"HTTP/1.1 " + status_line + b"\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n" + headers + b"\r\n" + body)
    return handler


@pytest.fixture
def servers():
    started = []

    def start(handler):
        started.append(RawServer(handler))
        return started[-1]

    yield start
    for server in started:
        server.close()


# --- AMQP 0-9-1, as far as a publisher goes ---------------------------------------------------

def _amqp_method(channel: int, method: tuple[int, int], fmt: str = "", args=()) -> bytes:
    payload = struct.pack(">HH", *method) + dumps(fmt, list(args))
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


def _amqp_frames(stream):
    """(type, channel, method or None) of each frame the client sends, until it hangs up."""
    while len(head := stream.read(7)) == 7:
        kind, channel, size = struct.unpack(">BHI", head)
        payload, _end = stream.read(size), stream.read(1)
        yield kind, channel, struct.unpack(">HH", payload[:4]) if kind == 1 else None


def amqp_broker_that_blocks(reason: str):
    """A handler for ``servers``: an AMQP broker that does what a publisher needs (handshake,
    channel, exchange, confirm mode) and, at the first message published, blocks the
    connection with ``reason`` as RabbitMQ does under a memory or disk alarm (connection.blocked),
    confirming nothing after it."""
    answers = {  # the client's method: the broker's answer (method, format, arguments)
        (10, 11): ((10, 30), "BlB", (2047, 131072, 0)),  # start-ok: tune, no heartbeats
        (10, 40): ((10, 41), "s", ("",)),  # open: open-ok
        (20, 10): ((20, 11), "S", ("",)),  # channel.open: open-ok
        (40, 10): ((40, 11), "", ()),  # exchange.declare: declare-ok
        (85, 10): ((85, 11), "", ()),  # confirm.select: select-ok
    }

    def handler(conn):
        stream = conn.makefile("rb")
        stream.read(8)  # the protocol header
        capabilities = {"publisher_confirms": True, "connection.blocked": True}
        conn.sendall(_amqp_method(0, (10, 10), "ooFSS", (
            0, 9, {"capabilities": capabilities}, "PLAIN AMQPLAIN", "en_US")))
        blocked = False
        for _kind, channel, method in _amqp_frames(stream):
            if method in answers:
                conn.sendall(_amqp_method(channel, *answers[method]))
            elif method == (60, 40) and not blocked:  # basic.publish
                conn.sendall(_amqp_method(0, (10, 60), "s", (reason,)))
                blocked = True
            elif method == (10, 50):  # connection.close: close-ok
                conn.sendall(_amqp_method(0, (10, 51)))
                return

    return handler
