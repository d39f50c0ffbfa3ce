"""Action tasks: deliver one request, send the due ones, fail the ones past their deadline."""

from celery import shared_task
from flask import current_app

from thingbridge.actions import delivery, service
from thingbridge.connectors.plugin_call import lease_budget


@shared_task(name="thingbridge.deliver_action", acks_late=True, ignore_result=True)
def deliver_action(request_id: str, token: str | None = None) -> str:
    """One delivery attempt, holding the request's lease (``token``: the sender's claim)."""
    return delivery.attempt(request_id, token, current_app.config["TASK_LEASE"], lease_budget())


@shared_task(name="thingbridge.dispatch_actions", ignore_result=True, autoretry_for=())
def dispatch_actions() -> int:
    return service.dispatch_due(current_app.config["DISPATCH_BATCH"])


@shared_task(name="thingbridge.expire_actions", ignore_result=True, autoretry_for=())
def expire_actions() -> int:
    return service.expire_overdue()
