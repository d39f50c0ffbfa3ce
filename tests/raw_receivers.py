"""Receivers written on raw sockets, for answers a framework would not give: trickling,
hanging, compressed bombs, counted connections."""

from __future__ import annotations

import socket
import threading

import pytest


class RawServer:
    """A TCP listener on loopback that runs ``handler(conn)`` for every connection."""

    def __init__(self, handler):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.handler = handler
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def url(self, host="127.0.0.1"):
        return f"http://{host}:{self.port}/hook"

    def close(self):
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
