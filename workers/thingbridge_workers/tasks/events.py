"""Outbox housekeeping."""

from celery import shared_task

from thingbridge.outbox import retention


@shared_task(name="thingbridge.prune_events", ignore_result=True, autoretry_for=())
def prune_events() -> int:
    """Delete events past retention that every delivery module is done with."""
    return retention.prune()
