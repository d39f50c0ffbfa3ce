"""kombu's Redis transport, made to survive a broker restart with tasks in flight.

When the broker goes away, Celery's consumer collects its connection (kombu clears the
transport's ``client``) and then closes the connection again. If the first close of the task
channel failed half-way (the pending BRPOP read hit the dead socket), the second close tries to
restore the unacknowledged messages through a new Redis client built from that cleared
``client``, and the worker dies with ``AttributeError: 'NoneType' object has no attribute
'hostname'`` (kombu and Celery 5.7, seen with the threads pool). Reporting a connection error
instead lets the consumer reconnect as it does for any broker outage; the messages stay in
Redis's unacked set and come back after the visibility timeout, as after a worker crash.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

NAME = "thingbridge.redis_transport:Transport"


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection was already collected")
        return super()._connparams(asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
