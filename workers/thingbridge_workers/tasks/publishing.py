"""Message-broker publishing tasks (being written: see thingbridge.publishing)."""

from celery import shared_task


@shared_task(name="thingbridge.dispatch_publishing", ignore_result=True)
def dispatch_publishing() -> int:
    """Placeholder until the publisher module lands: nothing configured, nothing to do."""
    return 0
