"""Action tasks: deliver one request, and fail the ones that ran past their deadline."""

from celery import shared_task

from thingbridge.actions.service import expire_overdue
from thingbridge_workers import action_delivery


@shared_task(name="thingbridge.deliver_action", acks_late=True, ignore_result=True)
def deliver_action(request_id: str) -> str:
    return action_delivery.deliver(request_id)


@shared_task(name="thingbridge.expire_actions", ignore_result=True)
def expire_actions() -> int:
    return expire_overdue()
