"""Redis streams: one XADD per event to one stream, a batch in one MULTI/EXEC.

MULTI makes a batch all-or-nothing, so a connection lost mid-batch leaves no half batch that
the retry would then duplicate. "Confirmed" is Redis's reply: durability beyond memory is the
server's persistence setting (appendonly) to choose.
"""

from __future__ import annotations

import redis

from thingbridge.outbox.events import body
from thingbridge.outbox.publishers.base import TIMEOUT, Publisher

DEFAULT_STREAM = "thingbridge:events"


class RedisStreamPublisher(Publisher):
    options = ("stream", "maxlen")

    def __init__(self, url: str):
        super().__init__(url)
        self.stream = self.params.get("stream") or DEFAULT_STREAM
        maxlen = self.params.get("maxlen")
        self.maxlen = int(maxlen) if maxlen else None
        self._client: redis.Redis | None = None

    def connected(self) -> bool:
        return self._client is not None

    def connect(self) -> None:
        # redis-py's pool reconnects by itself; the client is only rebuilt after a failure.
        self._client = redis.Redis.from_url(self.connection_url, socket_timeout=TIMEOUT,
                                            socket_connect_timeout=TIMEOUT)

    def send(self, envelopes: list[dict]) -> None:
        pipe = self._client.pipeline(transaction=True)
        for envelope in envelopes:
            fields = {"app": envelope["app"], "id": envelope["id"], "type": envelope["type"],
                      "event": body(envelope)}
            pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def cut(self) -> None:
        client = self._client
        if client is not None:  # shuts every connection's socket down, those in use too
            client.connection_pool.disconnect(inuse_connections=True)
