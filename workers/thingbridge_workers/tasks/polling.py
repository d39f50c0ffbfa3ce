"""Polling tasks: the beat-driven dispatcher and the per-client poll."""

from celery import shared_task

from thingbridge_workers import polling


@shared_task(name="thingbridge.dispatch_polls", ignore_result=True, autoretry_for=())
def dispatch_polls() -> int:
    """Claim due clients and enqueue one poll each."""
    return polling.dispatch()


@shared_task(name="thingbridge.poll_client", acks_late=True, ignore_result=True)
def poll_client(client_id: str, token: str | None = None) -> str:
    """Poll one client, holding its lease (``token``: the dispatcher's claim). Safe to run
    twice: a copy finds the client held, and the upsert is keyed by ThingMapping."""
    return polling.poll(client_id, token)
