"""Action tasks: deliver one request, send the due ones, fail the ones past their deadline."""

from celery import shared_task
from flask import current_app

from thingbridge.actions import service
from thingbridge.crypto import SecretKeyError
from thingbridge_workers import action_delivery


@shared_task(name="thingbridge.deliver_action", acks_late=True, ignore_result=True)
def deliver_action(request_id: str, token: str | None = None) -> str:
    """One delivery attempt, holding the request's lease (``token``: the sender's claim)."""
    try:
        taken = service.take_delivery(request_id, token)
    except SecretKeyError as exc:  # taken, with a connector whose credentials no key reads
        outcome = action_delivery.unreadable_target(request_id, exc)
    else:
        if taken is None:
            return "held"  # another task holds it, or it is no longer PENDING
        outcome = action_delivery.deliver(*taken)
    if outcome not in action_delivery.SETTLED:
        service.release_delivery(request_id, awaiting_app=outcome == "accepted")
    return outcome


@shared_task(name="thingbridge.dispatch_actions", ignore_result=True, autoretry_for=())
def dispatch_actions() -> int:
    return service.dispatch_due(current_app.config["DISPATCH_BATCH"])


@shared_task(name="thingbridge.expire_actions", ignore_result=True, autoretry_for=())
def expire_actions() -> int:
    return service.expire_overdue()
