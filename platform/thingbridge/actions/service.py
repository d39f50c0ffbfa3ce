"""Action requests: parameters checked against the declaration, creation, delivery leases and
the dispatcher, the one-way move out of PENDING, and connector execution.

A request to deliver is due from ``next_attempt_at``, written with the request itself; its
first attempt starts at once (``delivery.create_request``), but the dispatcher (beat) sends
every due request that no task holds, so a broker outage delays a delivery and never loses one.
"""

from __future__ import annotations

import contextlib
import datetime
import uuid
from functools import cache

from flask import current_app
from peewee import JOIN, IntegrityError, fn

from thingbridge import sql, tasks, turns
from thingbridge.connectors.plugin_call import call_plugin
from thingbridge.connectors.registry import build_connector
from thingbridge.db import db, is_postgres, locking, retry_idempotent, utcnow
from thingbridge.errors import ApiError
from thingbridge.lease import Lease
from thingbridge.limits import quotas
from thingbridge.models import (
    Action,
    ActionRequest,
    App,
    ConnectorClient,
    ConnectorInstance,
    Thing,
    ThingMapping,
)
from thingbridge.models.actions import pending
from thingbridge.observability import metrics
from thingbridge.outbox import events
from thingbridge.schemas.things import check_value
from thingbridge.sql import Statement, param
from thingbridge.things.poll_sql import from_row, row_parts

DELIVER_TASK = "thingbridge.deliver_action"
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")
# Seconds a dispatched delivery may wait in the queue before the request is sent again: short,
# because a request has only ACTION_TIMEOUT (60 s) to be delivered.
CLAIM_LEASE = 10.0


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
                   parameters: dict, external_id: str | None = None,
                   deliver: bool = False, rate: quotas.Rate | None = None) -> ActionRequest:
    """A PENDING request and its action.requested event, committed together; one a worker is
    to ``deliver`` is due for it now. With a ``rate``, the request spends one use of it,
    committed with the request, and is refused (429, nothing recorded) if the rate is spent."""
    now = utcnow()
    timeout = datetime.timedelta(seconds=current_app.config["ACTION_TIMEOUT"])
    request = ActionRequest(app=app, external_subject_id=subject, thing=thing,
                            component_id=component_id, action_id=action_id,
                            parameters=parameters, deadline=now + timeout,
                            external_id=external_id, next_attempt_at=now if deliver else None)
    use = rate.use() if rate else None
    if use is not None and is_postgres():
        # The spend, the request and its event in one statement, one round trip: the request
        # is inserted only if the spend returned a row, the event only if the request was.
        if not events.emit_after(*sql.insert_values(request, only_if="spent"), request.app_id,
                                 "action.requested", subject, request_body(request),
                                 events.Ahead("spent", use.sql, use.params)):
            raise rate.refused(use)
        return request
    # SQLite runs no write in a CTE: the spend is a statement of its own, in one transaction
    # with the request's.
    with db.atomic() if use is not None else contextlib.nullcontext():
        if use is not None and not use.run():
            raise rate.refused(use)
        events.emit_after(*sql.insert_values(request), request.app_id, "action.requested",
                          subject, request_body(request))
    return request


def record_once(app, thing: Thing, component_id: str, action_id: str, parameters: dict,
                external_id: str, deliver: bool = False,
                rate: quotas.Rate | None = None) -> tuple[ActionRequest, bool]:
    """The app's request with the caller's ``external_id``, and whether this call created it
    (a second call with the same id, concurrent or later, gets the first one's row and
    spends nothing of ``rate``, even when the first took its last use); ``deliver`` and
    ``rate`` as for :func:`record_request`."""
    # A savepoint inside a caller's transaction: the failed insert must not abort it. On its
    # own, PostgreSQL's statement fails whole, spend included; SQLite's are several.
    alone = not db.in_transaction() and is_postgres()
    try:
        with contextlib.nullcontext() if alone else db.atomic():
            return record_request(app, thing.external_subject_id, thing, component_id,
                                  action_id, parameters, external_id, deliver, rate), True
    except IntegrityError:
        if (earlier := recorded(app, external_id)) is None:
            raise  # not the id: the thing was deleted meanwhile, say
        return earlier, False
    except ApiError as exc:
        # Refused by the rate: a concurrent call with the id may have taken the minute's last
        # use, and its request is then the answer.
        if exc.code != 429 or (earlier := recorded(app, external_id)) is None:
            raise
        return earlier, False


def recorded(app, external_id: str) -> ActionRequest | None:
    """The app's request with the caller's ``external_id``, if there is one."""
    return ActionRequest.get_or_none((ActionRequest.app == app)
                                     & (ActionRequest.external_id == external_id))


def _lease() -> Lease:
    return Lease(ActionRequest, current_app.config["TASK_LEASE"])


_REQUEST_FIELDS = ActionRequest._meta.sorted_fields


@cache
def _take(postgres: bool, share: bool) -> tuple[Statement, Statement]:
    # Built once per database and share setting: peewee spent more CPU building the take (the
    # lease condition, the in-flight count) than PostgreSQL spent running it.
    now, request_id = param("now"), param("id")
    app = App.select(App.id).join(ActionRequest, on=(ActionRequest.app == App.id)).where(
        ActionRequest.id == request_id)
    # Every value is a placeholder: a constant in the text would be taken for one's name.
    pending = param("pending")
    mine = ((ActionRequest.id == request_id) & (ActionRequest.status == pending)
            & Lease(ActionRequest, 0).takeable(param("token"), now,
                                               ActionRequest.next_attempt_at <= now))
    if share:
        other = ActionRequest.alias()
        # The app is the taken request's own (a correlated count): the take needs nothing the
        # lock's answer says, so on PostgreSQL both go to the server in one flight.
        mine &= other.select(fn.COUNT(other.id)).where(
            (other.app == ActionRequest.app) & (other.status == pending)
            & (other.delivering_until > now) & (other.id != request_id)) < param("share")
    until = param("until")
    take = (ActionRequest.update({ActionRequest.lease_token: param("token"),
                                  ActionRequest.leased_until: until,
                                  ActionRequest.delivering_until: until})
            .where(mine).returning(*_REQUEST_FIELDS))
    if postgres:
        # The delivery's target (thing, client, instance, mapping) is read by the same
        # statement: one round trip fewer per delivery.
        taken = take.cte("taken")
        take = _target_joins(
            taken.select_from(*[getattr(taken.c, f.column_name) for f in _REQUEST_FIELDS],
                              *_TARGET_COLUMNS)
            .join(Thing, JOIN.LEFT_OUTER, on=(Thing.id == taken.c.thing_id)))
    # NO KEY UPDATE: takes for one app still queue behind each other, and the key-share lock an
    # event row's foreign key takes on the app passes; with FOR UPDATE a terminal move (holding
    # the request, appending its event) and a take (holding the app, taking the request) would
    # deadlock.
    locked = app.for_update("FOR NO KEY UPDATE", of=App) if postgres else app
    return Statement.build(locked), Statement.build(take)


def take_delivery(request_id: str, token: str | None,
                  lease: float | None = None) -> tuple[ActionRequest, Target] | None:
    """Hold a PENDING request for one delivery attempt (``lease`` seconds, ``TASK_LEASE``
    unless given); the request (read back by the same
    statement) and its target (as :func:`connector_target`; on PostgreSQL read by the same
    statement too), or None if another task holds it, it is not due (settled, or waiting for
    the app after a 202), or its app already has ``ACTION_APP_CONCURRENCY`` deliveries in
    flight (the dispatcher sends it again later, so one app's dead callback takes that many
    worker threads and no more)."""
    now = utcnow()
    token = token or str(uuid.uuid4())
    share = current_app.config["ACTION_APP_CONCURRENCY"]
    lock_app, take = _take(is_postgres(), bool(share))
    values = {"id": request_id, "now": now, "token": token, "pending": "PENDING",
              "until": now + (_lease().duration if lease is None
                              else datetime.timedelta(seconds=lease))}
    if share:
        values["share"] = share
    # Takes for one app run one at a time (its row locked, found through the request, in a
    # statement before the take), so concurrent tasks never both count the same free slot.
    statements = ([(lock_app.sql, lock_app.values(id=request_id))] if share else []) + [
        (take.sql, take.values(**values))]
    if is_postgres():
        row = db.transaction_in_one_flight(statements)
    else:
        with db.atomic():
            for sql, params in statements:
                row = db.execute_sql(sql, params).fetchone()
    if row is None:
        return None
    request_part, target_part = row_parts(row, _REQUEST_FIELDS)
    request = from_row(ActionRequest, _REQUEST_FIELDS, request_part)
    if not target_part:  # SQLite: the take returns the request alone
        return request, connector_target(request.thing_id)
    return request, _target_from(target_part, request.thing_id)


def held_by(request: ActionRequest):
    """The condition that ``request`` (as its take read it back) still holds its lease: what
    an attempt writes after its provider call changes nothing once another sender holds it."""
    return ActionRequest.lease_token == request.lease_token


def release_delivery(request: ActionRequest, awaiting_app: bool) -> None:
    """After an attempt: free the request, if the attempt still holds it. One the app answered
    202 for is not due again (the app finishes it); one to retry is due when the attempt
    said."""
    fields = {"next_attempt_at": None} if awaiting_app else {}
    ActionRequest.update(**Lease.RELEASED, delivering_until=None, **fields).where(
        (ActionRequest.id == request.id) & held_by(request)).execute()


def _due(request, now: datetime.datetime):
    return pending(request) & (request.next_attempt_at <= now) & Lease(request, 0).free(now)


def dispatch_due(limit: int) -> int:
    """Send up to ``limit`` due PENDING requests no task holds (beat), in turns between apps
    (``turns.py``): one app's backlog of retries does not hold back another app's until
    their deadlines pass. Concurrent dispatchers never claim the same one: the rows are
    locked (skipping those another holds) and the conditions checked again on them."""
    now, token = utcnow(), str(uuid.uuid4())
    lease = Lease(ActionRequest, CLAIM_LEASE)
    with turns.claiming():
        query = ActionRequest.select(ActionRequest.id).where(
            ActionRequest.id.in_(turns.in_turns(ActionRequest, lambda r: _due(r, now),
                                                "next_attempt_at", limit))
            & _due(ActionRequest, now))
        ids = [row.id for row in locking(query, skip_locked=True)]
        if ids:
            lease.take(ActionRequest.id.in_(ids), now, token)
    tasks.send_claimed(DELIVER_TASK, ActionRequest, ids, token, CLAIM_LEASE)
    return len(ids)


@cache
def _move(postgres: bool, release: bool) -> Statement:
    # Built once, as the take is; every value a placeholder. ``release`` also frees the
    # delivery lease in the same statement.
    nothing = param("nothing")
    fields = {ActionRequest.status: param("status"), ActionRequest.error: param("error"),
              ActionRequest.updated_at: param("now")}
    if release:
        fields.update({ActionRequest.lease_token: nothing, ActionRequest.leased_until: nothing,
                       ActionRequest.delivering_until: nothing})
    return Statement.build(
        ActionRequest.update(fields)
        .where((ActionRequest.id == param("id")) & (ActionRequest.status == param("pending")))
        .returning(ActionRequest.id))


@retry_idempotent
def finish(request: ActionRequest, status: str, error: str | None = None,
           release: bool = False) -> bool:
    """Move a PENDING request to a terminal state (``release``: and free its delivery lease in
    the same statement), ``request`` too; False if it had already left PENDING. The move emits
    action.completed, or action.failed (FAILED and CANCELED)."""
    assert status in TERMINAL
    kind = "action.completed" if status == "COMPLETED" else "action.failed"
    # What the event says of the request never changes after it is created, but its status.
    data = {**request_body(request), "status": status, "error": error}
    move = _move(is_postgres(), release)
    moved = events.emit_after(move.sql, move.values(
        id=request.id, pending="PENDING", status=status, error=error, now=utcnow(),
        nothing=None), request.app_id, kind, request.external_subject_id, data)
    if moved:
        request.status, request.error = status, error
        metrics.action_finished(status, error, request.created_at)
    return moved


def expire_overdue() -> int:
    """PENDING past its deadline becomes FAILED (timeout): nothing waits forever."""
    overdue = ActionRequest.select().where(
        (ActionRequest.status == "PENDING") & (ActionRequest.deadline < utcnow()))
    return sum(finish(request, "FAILED", "timeout") for request in overdue)


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


_TARGET_FIELDS = (Thing._meta.sorted_fields, ConnectorClient._meta.sorted_fields,
                  ConnectorInstance._meta.sorted_fields)
_TARGET_COLUMNS = (*_TARGET_FIELDS[0], *_TARGET_FIELDS[1], *_TARGET_FIELDS[2],
                   ThingMapping.connector_thing_id)


def _target_joins(query):
    """``query`` (which has Thing) joined to the thing's client, instance and mapping."""
    return (query.join_from(Thing, ConnectorClient, JOIN.LEFT_OUTER,
                            on=(Thing.connector_client == ConnectorClient.id))
            .join_from(ConnectorClient, ConnectorInstance, JOIN.LEFT_OUTER)
            .join_from(Thing, ThingMapping, JOIN.LEFT_OUTER, on=(ThingMapping.thing == Thing.id)))


@cache
def _target(postgres: bool) -> Statement:
    # Built once (peewee spent more CPU building this four-table query than running it).
    return Statement.build(_target_joins(Thing.select(*_TARGET_COLUMNS))
                           .where(Thing.id == param("id")))


Target = tuple[Thing, ConnectorClient | None, str | None]


def _target_from(row: tuple, thing_id: str) -> Target:
    if row is None or row[0] is None:
        raise Thing.DoesNotExist(thing_id)
    thing_part, client_part, instance_part, (device_id,) = row_parts(row, *_TARGET_FIELDS)
    thing = from_row(Thing, _TARGET_FIELDS[0], thing_part)
    if thing.connector_client_id is None:
        return thing, None, None
    client = from_row(ConnectorClient, _TARGET_FIELDS[1], client_part)
    client.instance = from_row(ConnectorInstance, _TARGET_FIELDS[2], instance_part)
    return thing, client, device_id


def connector_target(thing_id: str) -> Target:
    """The thing with, for a connector's thing, its client (instance loaded) and the
    provider's id of the device: one query."""
    return _target_from(_target(is_postgres()).run(id=thing_id).fetchone(), thing_id)


def perform_connector_action(client: ConnectorClient, device_id: str, component_id: str,
                             action_id: str, parameters: dict, budget: float,
                             refresh: bool = True) -> None:
    """Run an action on a connector's device (as :func:`connector_target` found them) through
    its plugin, its provider calls within ``budget`` seconds; raises contract errors (and,
    without ``refresh``, ``RefreshNeeded``: as :func:`call_plugin`)."""
    connector = build_connector(client.type_id)
    call_plugin(connector, client, lambda ctx: connector.perform_action(
        ctx, device_id, component_id, action_id, parameters), budget, refresh)
