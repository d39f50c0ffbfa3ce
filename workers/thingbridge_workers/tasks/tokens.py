"""App token housekeeping, and the per-minute request counters that limit token requests."""

from celery import shared_task

from thingbridge.auth import credentials
from thingbridge.limits import quotas


@shared_task(name="thingbridge.prune_tokens", ignore_result=True, autoretry_for=())
def prune_tokens() -> int:
    """Delete app tokens that are revoked or expired (neither authenticates again) and
    request counters of minutes gone by."""
    return credentials.prune_tokens() + quotas.prune()
