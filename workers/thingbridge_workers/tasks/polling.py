"""Polling tasks: the beat-driven dispatcher and the per-client poll."""

from celery import shared_task

from thingbridge_workers import polling


@shared_task(name="thingbridge.dispatch_polls", ignore_result=True)
def dispatch_polls() -> int:
    """Claim due clients and enqueue one poll each."""
    return polling.dispatch()


@shared_task(name="thingbridge.poll_client", acks_late=True, ignore_result=True)
def poll_client(client_id: str) -> str:
    """Poll one client. Safe to run twice: the upsert is keyed by ThingMapping."""
    return polling.poll(client_id)
