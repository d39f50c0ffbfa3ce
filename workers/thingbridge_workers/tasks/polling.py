"""Polling tasks: the beat-driven dispatcher, the per-client poll, and the poll tallies."""

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_shutdown

from thingbridge.connectors import poll_tally
from thingbridge.db import db
from thingbridge_workers import dispatcher, polling


@shared_task(name="thingbridge.dispatch_polls", ignore_result=True, autoretry_for=())
def dispatch_polls() -> int:
    """Claim due clients and enqueue one poll each."""
    return dispatcher.dispatch()


@shared_task(name="thingbridge.poll_client", acks_late=True, ignore_result=True)
def poll_client(client_id: str, token: str | None = None) -> str:
    """Poll one client, holding its lease (``token``: the dispatcher's claim). Safe to run
    twice: a copy finds the client held, and the upsert is keyed by ThingMapping."""
    return polling.poll(client_id, token)


@shared_task(name="thingbridge.prune_poll_tallies", ignore_result=True, autoretry_for=())
def prune_poll_tallies() -> int:
    """Drop per-minute poll counts older than a day (the console shows the last hour)."""
    return poll_tally.prune()


@worker_process_shutdown.connect  # a pool process (prefork)
@worker_shutdown.connect          # the worker itself (thread and solo pools poll in it)
def _flush_poll_tally(**_kwargs) -> None:
    db.connect(reuse_if_open=True)
    poll_tally.flush()
