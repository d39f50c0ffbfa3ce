"""RabbitMQ as the Celery broker (``THINGBRIDGE_BROKER_URL=amqp://...``), in a virtual host of
the test's own: a worker polls through it after sitting idle longer than the broker's socket
timeout, and a RabbitMQ that stops answering on a connection already open (a frozen link, a
stopped process: a proxy that passes nothing more) fails the dispatcher's count and a send
within seconds, where they waited until the operating system gave the connection up."""

from __future__ import annotations

import subprocess
import threading
import time
from urllib.parse import urlsplit

from broker_helpers import FreezableProxy, rabbitmq_vhost
from flows import owm_client, wait_status
from helpers import AMQP_URL, DATABASE_URL, PUBLIC_BASE_URL, SECRET_KEY, wait_until

from thingbridge import tasks
from thingbridge.tasks import BrokerUnavailable

RABBITMQ_PORT = urlsplit(AMQP_URL).port or 5672


def _platform(second_app, simulators, broker_url: str):
    return second_app({
        "DATABASE_URL": DATABASE_URL, "BROKER_URL": broker_url, "SECRET_KEYS": SECRET_KEY,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "HTTP_TIMEOUT": 3,
        "OPENWEATHERMAP_BASE_URL": simulators["openweathermap"],
        "NETATMO_BASE_URL": simulators["netatmo"]})


def _connections(vhost: str) -> set[str]:
    """The client ports of RabbitMQ's connections to ``vhost`` (a new connection has a new one)."""
    listed = subprocess.run(["rabbitmqctl", "-q", "list_connections", "-p", vhost, "peer_port",
                             "--no-table-headers"], capture_output=True, text=True, timeout=60,
                            check=True).stdout
    return set(listed.split())


def _settled_connections(vhost: str) -> set[str]:
    """The connections, once the same ones are listed twice a second apart (else empty)."""
    first = _connections(vhost)
    time.sleep(1)
    return first if first and _connections(vhost) == first else set()


def _ended_within(app, call, seconds: float):
    """What ``call`` returned or raised in the app's context, or "still waiting" after
    ``seconds`` (a bound far above the broker's timeouts: it tells an end from a hang)."""
    outcome = ["still waiting"]

    def run():
        with app.app_context():
            try:
                outcome[0] = call()
            except Exception as exc:  # noqa: BLE001 - the outcome is what is asserted
                outcome[0] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return outcome[0]


def test_a_worker_on_rabbitmq_polls_after_sitting_idle(api, second_app, simulators,
                                                       start_worker):
    client_id = owm_client(api)  # due now; its first poll went to the suite's Redis
    with rabbitmq_vhost() as vhost:
        url = f"amqp://guest:guest@127.0.0.1:{RABBITMQ_PORT}/{vhost}"
        app = _platform(second_app, simulators, url)
        start_worker(env={"THINGBRIDGE_BROKER_URL": url})
        connected = wait_until(lambda: _settled_connections(vhost), timeout=60,
                               message="the worker connected to RabbitMQ")
        # Idle past the socket timeout: the worker's connections are the same ones after it
        # (one cut by the timeout would have been opened again, under another port).
        time.sleep(3 * tasks.BROKER_SOCKET_TIMEOUT)
        assert _connections(vhost) == connected
        with app.app_context():
            from thingbridge_workers.dispatcher import dispatch

            assert dispatch() == 1
        assert wait_status(client_id, "STARTED", timeout=60).status == "STARTED"


def test_a_rabbitmq_that_stops_answering_fails_the_count_and_sends_within_seconds(
        api, second_app, simulators):
    with rabbitmq_vhost() as vhost:
        proxy = FreezableProxy(RABBITMQ_PORT).start()
        try:
            app = _platform(second_app, simulators,
                            f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}")
            assert _ended_within(app, tasks.waiting, 60) == 0
            proxy.freeze()
            counted = _ended_within(app, tasks.waiting, 60)
            sent = _ended_within(app, lambda: tasks.enqueue_soon("thingbridge.poll_client", "x"),
                                 60)
        finally:
            proxy.close()
    assert isinstance(counted, BrokerUnavailable), counted
    assert sent is False  # logged and left to the dispatcher, not raised into the request
