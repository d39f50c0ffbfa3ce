"""Serve a WSGI app on 127.0.0.1 in a background thread (simulators in tests, demo, benchmarks)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server, run_simple


class LocalServer:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self._server = make_server(host, port, app, threaded=True)
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        # A short poll interval makes stop() (and so test teardown) quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serving(app, port: int = 0) -> Iterator[LocalServer]:
    server = LocalServer(app, port=port).start()
    try:
        yield server
    finally:
        server.stop()


def simulator_main(factory, default_port: int, description: str) -> None:
    """``python -m <connector>.simulator [--host H] [--port P]``: serve one provider simulator."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args()
    run_simple(args.host, args.port, factory(), threaded=True)
