"""App token housekeeping."""

from celery import shared_task

from thingbridge.auth import credentials


@shared_task(name="thingbridge.prune_tokens", ignore_result=True)
def prune_tokens() -> int:
    """Delete app tokens that are revoked or expired: neither authenticates again."""
    return credentials.prune_tokens()
