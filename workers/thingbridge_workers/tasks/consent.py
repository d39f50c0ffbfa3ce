"""OAuth consent housekeeping."""

from celery import shared_task

from thingbridge.connectors import consent


@shared_task(name="thingbridge.expire_consents", ignore_result=True, autoretry_for=())
def expire_consents() -> int:
    """Clients whose consent was never finished go to ERROR; expired states are deleted."""
    return consent.expire_unfinished()
