"""Webhook tasks: the beat-driven pump and the per-lane sender."""

from celery import shared_task

from thingbridge_workers import webhook_delivery


@shared_task(name="thingbridge.pump_webhooks", ignore_result=True, autoretry_for=())
def pump_webhooks() -> int:
    """Turn new outbox events into deliveries and start senders for idle lanes."""
    return webhook_delivery.pump()


# Not acks_late: a lost task is recovered by its lane's lease expiring, not by redelivery.
@shared_task(name="thingbridge.deliver_webhooks", acks_late=False, ignore_result=True)
def deliver_webhooks(delivery_id: int, lease_token: str) -> int:
    """Send one lane's deliveries in order while holding its lease."""
    return webhook_delivery.deliver_lane(delivery_id, lease_token)
