"""Action requests: parameters checked against the declaration, creation, the one-way move
out of PENDING, and connector execution."""

from __future__ import annotations

import datetime

from flask import current_app
from peewee import IntegrityError

from thingbridge.connectors.lifecycle import schedule_first_poll
from thingbridge.connectors.plugin_call import call_plugin
from thingbridge.connectors.registry import build_connector
from thingbridge.db import db, utcnow
from thingbridge.errors import ApiError
from thingbridge.models import Action, ActionRequest, ConnectorClient, Thing, ThingMapping
from thingbridge.observability import metrics
from thingbridge.outbox import events
from thingbridge.schemas.things import check_value
from thingbridge.tasks import enqueue

DELIVER_TASK = "thingbridge.deliver_action"
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")


def check_parameters(action: Action, parameters: dict) -> None:
    """400 naming every way ``parameters`` break the action's declaration."""
    declared = {p["name"]: p for p in action.parameters}
    problems = [f"unknown parameter {name[:50]!r}" for name in parameters if name not in declared]
    for name, spec in declared.items():
        if name not in parameters:
            if spec.get("required"):
                problems.append(f"missing required parameter {name!r}")
        elif problem := check_value(spec.get("type", "STRING"), parameters[name]):
            problems.append(f"parameter {name!r}: {problem[:100]}")
    if problems:
        raise ApiError(400, "invalid action parameters: " + "; ".join(problems),
                       "INVALID_PARAMETERS")


def record_request(app, subject: str, thing: Thing, component_id: str, action_id: str,
                   parameters: dict, external_id: str | None = None) -> ActionRequest:
    """A PENDING request and its action.requested event, in one transaction."""
    timeout = datetime.timedelta(seconds=current_app.config["ACTION_TIMEOUT"])
    with db.atomic():
        request = ActionRequest.create(app=app, external_subject_id=subject, thing=thing,
                                       component_id=component_id, action_id=action_id,
                                       parameters=parameters, deadline=utcnow() + timeout,
                                       external_id=external_id)
        events.emit(request.app_id, "action.requested", subject, request_body(request))
    return request


def create_request(app, subject: str, thing: Thing, component_id: str, action_id: str,
                   parameters: dict) -> ActionRequest:
    """Record a request and have a worker deliver it."""
    request = record_request(app, subject, thing, component_id, action_id, parameters)
    enqueue(DELIVER_TASK, request.id)
    return request


def record_once(app, thing: Thing, component_id: str, action_id: str, parameters: dict,
                external_id: str) -> tuple[ActionRequest, bool]:
    """The app's request with the caller's ``external_id``, and whether this call created it
    (a second call with the same id, concurrent or later, gets the first one's row)."""
    try:
        return record_request(app, thing.external_subject_id, thing, component_id, action_id,
                              parameters, external_id), True
    except IntegrityError:
        return ActionRequest.get((ActionRequest.app == app)
                                 & (ActionRequest.external_id == external_id)), False


def finish(request_id: str, status: str, error: str | None = None) -> bool:
    """Move a PENDING request to a terminal state; False if it had already left PENDING.
    The move emits action.completed, or action.failed (FAILED and CANCELED)."""
    assert status in TERMINAL
    with db.atomic():
        moved = ActionRequest.update(status=status, error=error, updated_at=utcnow()).where(
            (ActionRequest.id == request_id) & (ActionRequest.status == "PENDING")).execute()
        if moved:
            request = ActionRequest.get_by_id(request_id)
            metrics.action_finished(status, error, request.created_at)
            kind = "action.completed" if status == "COMPLETED" else "action.failed"
            events.emit(request.app_id, kind, request.external_subject_id,
                        {**request_body(request), "error": error})
    return bool(moved)


def expire_overdue() -> int:
    """PENDING past its deadline becomes FAILED (timeout): nothing waits forever."""
    overdue = ActionRequest.select(ActionRequest.id).where(
        (ActionRequest.status == "PENDING") & (ActionRequest.deadline < utcnow()))
    return sum(finish(row.id, "FAILED", "timeout") for row in overdue)


def request_body(request: ActionRequest) -> dict:
    return {"id": request.id, "thingId": request.thing_id, "componentId": request.component_id,
            "actionId": request.action_id, "status": request.status,
            "parameters": request.parameters}


def recent_requests(app, limit: int = 50, status: str | None = None) -> list[ActionRequest]:
    """The app's newest action requests, each with its thing's ``name``."""
    query = ActionRequest.select(ActionRequest, Thing.name).join(Thing).where(
        ActionRequest.app == app)
    if status:
        query = query.where(ActionRequest.status == status)
    return list(query.order_by(ActionRequest.created_at.desc()).limit(limit))


def perform_connector_action(thing: Thing, component_id: str, action_id: str,
                             parameters: dict) -> None:
    """Run an action on a connector thing through its plugin; raises contract errors."""
    client = ConnectorClient.get_by_id(thing.connector_client_id)
    mapping = ThingMapping.get(ThingMapping.thing == thing)
    connector = build_connector(client.type_id)
    call_plugin(connector, client, lambda ctx: connector.perform_action(
        ctx, mapping.connector_thing_id, component_id, action_id, parameters))
    # Read the device back now rather than at the next scheduled poll.
    schedule_first_poll(client)
