"""Webhook tasks (being written)."""

from celery import shared_task


@shared_task(name="thingbridge.pump_webhooks", ignore_result=True)
def pump_webhooks() -> int:
    return 0
