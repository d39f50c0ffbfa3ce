"""Celery bound to the Flask app (Flask's Celery pattern). The API only sends tasks by name."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable

from celery import Celery, Task
from flask import Flask, current_app
from kombu import Exchange, Queue
from kombu.exceptions import OperationalError as BrokerUnavailable

from thingbridge import redis_transport
from thingbridge.config import var_dir
from thingbridge.db import DatabaseUnavailable, utcnow
from thingbridge.lease import Lease
from thingbridge.observability import logs

log = logging.getLogger(__name__)
BROKER_SOCKET_TIMEOUT = 2  # seconds the broker may take to answer a command
DEFAULT_QUEUE, POLL_QUEUE = "celery", "thingbridge.polls"
_EXCHANGE = Exchange(DEFAULT_QUEUE, "direct")  # Celery's default exchange
# A send that may fail (the broker is down) tries this hard before giving up on it.
SOON_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0,
                     "interval_max": 0.2}
SOON_PAUSE = 10.0  # seconds after a failed send that enqueue_soon leaves to the dispatcher
_soon_paused_until = [0.0]
# Periodic tasks of this process that met the database gone and have not run since.
_waiting_for_database: set[str] = set()


def _broker_options(url: str, visibility_timeout: int) -> dict:
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        # py-amqp sets no timeout on its socket: a send, or the dispatcher's count of waiting
        # polls, on a connection RabbitMQ stopped answering (a frozen link, a stopped process)
        # waited until the operating system gave the connection up. Its read and write
        # timeouts bound them. The workers' consumer is not cut by them when idle: kombu's
        # event loop reads it only when the socket has data, without waiting.
        return {"connect_timeout": 3, "read_timeout": BROKER_SOCKET_TIMEOUT,
                "write_timeout": BROKER_SOCKET_TIMEOUT}
    if not url.startswith("filesystem://"):
        # A broker that does not answer (a connect, or a command on a connection it stopped
        # reading: a stopped or wedged Redis, a half-open link) fails a send after seconds, not
        # never, so an API request that sends a task, or /health, never hangs on it. The
        # workers' BRPOP is not bounded by it (kombu's event loop checks that one itself).
        return {"visibility_timeout": visibility_timeout, "socket_connect_timeout": 3,
                "socket_timeout": BROKER_SOCKET_TIMEOUT}
    folder = var_dir() / "broker"
    (folder / "queue").mkdir(parents=True, exist_ok=True)
    (folder / "processed").mkdir(parents=True, exist_ok=True)
    # kombu keeps the fanout table (Celery's control and broadcast) in "control" relative to
    # the working directory unless told otherwise: every process must find the same one.
    return {"data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"), "store_processed": False,
            "control_folder": str(folder / "control")}


def celery_init_app(app: Flask) -> Celery:
    from thingbridge.db import db

    class FlaskTask(Task):
        # A task that met the database gone runs again after a backoff (1 s doubling, with
        # jitter, up to 30 s, five times); periodic tasks opt out, their next run is the retry.
        autoretry_for = (DatabaseUnavailable,)
        retry_backoff, retry_backoff_max, retry_jitter, max_retries = 1, 30, True, 5

        def __call__(self, *args, **kwargs):
            logs.start_task(self.name, self.request.id,
                            self.request.get(logs.TASK_HEADER))
            # Each task borrows a pooled connection on its first query and gives it back.
            with app.app_context():
                try:
                    result = self.run(*args, **kwargs)
                except DatabaseUnavailable as exc:
                    if self.autoretry_for:
                        raise
                    _skipped(self.name, exc)
                    return None
                finally:
                    if not db.is_closed() and not db.in_transaction():
                        db.close()
                if self.name in _waiting_for_database:
                    _waiting_for_database.discard(self.name)
                    log.warning("%s: the database is back", self.name)
                return result

    celery = Celery(app.name, task_cls=FlaskTask)
    broker_url = app.config["BROKER_URL"]
    celery.conf.update(
        broker_url=broker_url,
        broker_transport=redis_transport.NAME if broker_url.startswith("redis://") else None,
        broker_transport_options=_broker_options(broker_url,
                                                 app.config["BROKER_VISIBILITY_TIMEOUT"]),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        timezone="UTC",
        # Polls have a queue of their own: the dispatcher counts what waits in it (waiting())
        # and sends more only while there is room, whatever else the workers have queued.
        # A worker takes from both (in turn, on Redis).
        task_queues=(Queue(DEFAULT_QUEUE, _EXCHANGE, routing_key=DEFAULT_QUEUE),
                     Queue(POLL_QUEUE, _EXCHANGE, routing_key=POLL_QUEUE)),
        task_default_queue=DEFAULT_QUEUE,
        task_routes={"thingbridge.poll_client": {"queue": POLL_QUEUE}},
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def _skipped(name: str, exc: DatabaseUnavailable) -> None:
    """A periodic task's next run is its retry: an outage is one line per task, not a
    traceback every few seconds for as long as it lasts."""
    if name not in _waiting_for_database:
        _waiting_for_database.add(name)
        log.warning("%s: %s; skipped until the database is back", name, exc)


def enqueue(task_name: str, *args, countdown: float | None = None) -> None:
    current_app.extensions["celery"].send_task(task_name, args=args, countdown=countdown,
                                               headers=logs.task_headers())


def enqueue_many(task_name: str, arg_lists: list[tuple], **options) -> None:
    """Send one task per argument tuple over one producer (one broker connection taken from
    the pool for the batch, not one per task): a dispatcher sends hundreds at a time."""
    if not arg_lists:
        return  # nothing due: no broker connection taken
    celery = current_app.extensions["celery"]
    headers = logs.task_headers()
    with celery.producer_or_acquire() as producer:
        for args in arg_lists:
            celery.send_task(task_name, args=args, headers=headers, producer=producer,
                             **options)


def send_claimed(task_name: str, model, ids: list[str], token: str, lease: float) -> None:
    """Send one task per row a dispatcher claimed under ``token`` for at most ``lease``
    seconds. If the broker fails, the claims nobody took yet are let go at once rather than
    held with nothing sent; then the failure is raised. A claim a worker took (from a task
    sent before the failure) is left alone: its take renewed the lease from a later time, so
    it ends after any claim of this batch."""
    claims_end = utcnow() + datetime.timedelta(seconds=lease)
    try:
        enqueue_many(task_name, [(row_id, token) for row_id in ids])
    except BrokerUnavailable:
        Lease(model, 0).release(model.id.in_(ids) & (model.leased_until <= claims_end), token)
        raise


def waiting(queue_name: str = POLL_QUEUE) -> int:
    """Tasks waiting in a queue of the broker for a worker to take them (what workers have
    taken and not finished is not counted). The queue is declared as the workers declare it,
    so asking never fails on a queue no worker has declared yet; a broker that cannot be
    reached is ``BrokerUnavailable``."""
    celery = current_app.extensions["celery"]
    queue = celery.amqp.queues[queue_name]
    with celery.connection_or_acquire() as connection:
        try:
            return queue.bind(connection.default_channel).queue_declare().message_count
        except connection.connection_errors + connection.channel_errors as exc:
            # The transport's own error (redis' ConnectionError, say), as a send raises it.
            raise BrokerUnavailable(str(exc)) from exc


def sends_paused() -> float:
    """Seconds this process still leaves sends to the dispatcher after one failed (0: none)."""
    return max(0.0, _soon_paused_until[0] - time.monotonic())


def enqueue_soon(task_name: str, *args, countdown: float | None = None) -> bool:
    """Send a task that only speeds work up: the same work is already recorded as due in the
    database, where the dispatcher (beat) finds it. A broker that is down is logged, not
    raised, so a committed write never fails on it, and after a failed send this process
    leaves such tasks to the dispatcher for ``SOON_PAUSE`` seconds rather than have every
    request wait out the broker's timeouts again. True if sent."""
    return _soon(task_name, lambda celery: celery.send_task(
        task_name, args=args, countdown=countdown, headers=logs.task_headers(),
        retry_policy=SOON_RETRY_POLICY))


def enqueue_polls_soon(task_name: str, arg_lists: list[tuple]) -> bool:
    """``enqueue_soon`` for one poll per argument tuple, over one producer, as many as the
    polls' queue has room for under DISPATCH_BATCH: the others are due in the database
    already, where the dispatcher sends them taking turns with other apps' clients. So a
    burst sent directly (an app creating thousands of clients, an instance repaired) does
    not fill the queue ahead of the turns. True if every one was sent."""
    sent = []

    def send(celery):
        room = current_app.config["DISPATCH_BATCH"] - waiting()
        sent.extend(arg_lists[:max(room, 0)])
        enqueue_many(task_name, sent, retry_policy=SOON_RETRY_POLICY)

    return _soon(task_name, send) and len(sent) == len(arg_lists)


def _soon(task_name: str, send: Callable[[Celery], object]) -> bool:
    if sends_paused():
        return False
    try:
        send(current_app.extensions["celery"])
        return True
    except BrokerUnavailable as exc:
        _soon_paused_until[0] = time.monotonic() + SOON_PAUSE
        log.warning("broker unavailable, %s left to the dispatcher (and what this process "
                    "sends for %g s): %s", task_name, SOON_PAUSE, exc)
        return False
