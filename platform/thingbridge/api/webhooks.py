"""/api/v1/webhooks: endpoints of the app, their deliveries, secret rotation and replay."""

from __future__ import annotations

import datetime
from collections import defaultdict

from flask import current_app, g
from flask_smorest import Blueprint

from thingbridge.api.common import protected
from thingbridge.db import db, locking, utcnow
from thingbridge.errors import ApiError, not_found
from thingbridge.http.urls import outbound_url_problem
from thingbridge.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from thingbridge.outbox import events, webhook_signing
from thingbridge.outbox.events import MAX_ID
from thingbridge.schemas.webhooks import (
    DeliveriesQuery,
    DeliveryOut,
    DeliveryPage,
    ReplayIn,
    ReplayOut,
    SecretRotated,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks",
                description="Signed, retried, ordered event delivery to the app's endpoints")
SCOPE = "thingbridge.events"
D = WebhookDelivery


def _check_url(url: str) -> None:
    if problem := outbound_url_problem(url):
        raise ApiError(400, f"url {problem}", "INVALID_WEBHOOK_URL")


def _own(webhook_id: str, lock: bool = False) -> WebhookEndpoint:
    """The app's endpoint; ``lock`` (inside a transaction) holds its row against concurrent
    rotations, replays and fan-out until commit."""
    query = WebhookEndpoint.select().where((WebhookEndpoint.id == webhook_id)
                                           & (WebhookEndpoint.app == g.app))
    endpoint = (locking(query) if lock else query).first()
    if endpoint is None:
        raise not_found("webhook")
    return endpoint


def _out(endpoint: WebhookEndpoint, **extra) -> dict:
    return {"id": endpoint.id, "url": endpoint.url, "event_types": endpoint.event_types,
            "description": endpoint.description, "created_at": endpoint.created_at,
            "cursor": endpoint.cursor, **extra}


@blp.route("", methods=["POST"])
@protected(blp, SCOPE, errors=(400,))
@blp.arguments(WebhookIn)
@blp.response(201, WebhookOut)
def create_webhook(body):
    """Register an endpoint for events from now on; the signing secret is shown only here"""
    _check_url(body["url"])
    secret = webhook_signing.new_secret()
    endpoint = WebhookEndpoint.create(app=g.app, url=body["url"], event_types=body["event_types"],
                                      description=body["description"],
                                      secrets=[{"secret": secret, "expires_at": None}],
                                      cursor=events.last_seq(g.app.id))
    return _out(endpoint, secret=secret)


@blp.route("", methods=["GET"])
@protected(blp, SCOPE, errors=())
@blp.response(200, WebhookOut(many=True))
def list_webhooks():
    """The app's endpoints (secrets are never returned)"""
    return [_out(e) for e in WebhookEndpoint.select().where(WebhookEndpoint.app == g.app)
            .order_by(WebhookEndpoint.created_at)]


@blp.route("/<webhook_id>", methods=["GET"])
@protected(blp, SCOPE, errors=(404,))
@blp.response(200, WebhookOut)
def get_webhook(webhook_id):
    """One endpoint"""
    return _out(_own(webhook_id))


@blp.route("/<webhook_id>", methods=["PATCH"])
@protected(blp, SCOPE, errors=(400, 404))
@blp.arguments(WebhookPatch)
@blp.response(200, WebhookOut)
def patch_webhook(body, webhook_id):
    """Change url, event types or description (pending deliveries go to the new url)"""
    endpoint = _own(webhook_id)
    if "url" in body:
        _check_url(body["url"])
    # Only the fields sent: a whole-row save would write back a stale cursor or secret list.
    WebhookEndpoint.update(updated_at=utcnow(), **body).where(
        WebhookEndpoint.id == endpoint.id).execute()
    return _out(WebhookEndpoint.get_by_id(endpoint.id))


@blp.route("/<webhook_id>", methods=["DELETE"])
@protected(blp, SCOPE, errors=(404,))
@blp.response(204)
def delete_webhook(webhook_id):
    """Remove an endpoint with its deliveries"""
    _own(webhook_id).delete_instance(recursive=True)


@blp.route("/<webhook_id>/rotate-secret", methods=["POST"])
@protected(blp, SCOPE, errors=(404,))
@blp.response(200, SecretRotated)
def rotate_secret(webhook_id):
    """New signing secret; the previous one also signs for 24 hours"""
    with db.atomic():
        endpoint = _own(webhook_id, lock=True)
        now = utcnow()
        overlap = datetime.timedelta(seconds=current_app.config["WEBHOOK_SECRET_OVERLAP"])
        secret, secrets = webhook_signing.rotate(endpoint.secrets, now, overlap)
        WebhookEndpoint.update(secrets=secrets, updated_at=now).where(
            WebhookEndpoint.id == endpoint.id).execute()
    return {"secret": secret, "previous_valid_until": now + overlap}


def _deliveries_out(rows: list[WebhookDelivery]) -> list[dict]:
    attempts = defaultdict(list)
    if rows:
        for a in WebhookAttempt.select().where(
                WebhookAttempt.delivery.in_([d.id for d in rows])).order_by(WebhookAttempt.id):
            attempts[a.delivery_id].append({"at": a.created_at, "status_code": a.status_code,
                                            "error": a.error, "duration_ms": a.duration_ms})
    return [{"id": d.id, "event_id": d.seq, "event_type": d.event.type,
             "external_subject_id": d.event.external_subject_id, "status": d.status,
             "attempts": d.attempts,
             "next_attempt_at": d.next_attempt_at if d.status == "PENDING" else None,
             "last_status_code": d.last_status_code, "last_error": d.last_error,
             "created_at": d.created_at, "finished_at": d.finished_at,
             "attempt_log": attempts[d.id]} for d in rows]


def _deliveries(endpoint: WebhookEndpoint):
    return D.select(D, Event).join(Event).where(D.endpoint == endpoint)


def _delivery(endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    row = None
    if delivery_id <= MAX_ID:  # a larger id cannot exist (BIGINT)
        row = _deliveries(endpoint).where(D.id == delivery_id).first()
    if row is None:
        raise not_found("delivery")
    return row


@blp.route("/<webhook_id>/deliveries", methods=["GET"])
@protected(blp, SCOPE, errors=(400, 404))
@blp.arguments(DeliveriesQuery, location="query")
@blp.response(200, DeliveryPage)
def list_deliveries(args, webhook_id):
    """Deliveries with every attempt, oldest first; filter by status (DEAD: dead letters)"""
    query = _deliveries(_own(webhook_id)).where(D.id > args["after"])
    if args.get("status"):
        query = query.where(D.status == args["status"])
    rows = list(query.order_by(D.id).limit(args["limit"] + 1))
    page = rows[:args["limit"]]
    return {"deliveries": _deliveries_out(page),
            "cursor": page[-1].id if page else args["after"],
            "has_more": len(rows) > args["limit"]}


@blp.route("/<webhook_id>/deliveries/<int:delivery_id>", methods=["GET"])
@protected(blp, SCOPE, errors=(404,))
@blp.response(200, DeliveryOut)
def get_delivery(webhook_id, delivery_id):
    """One delivery with every attempt"""
    return _deliveries_out([_delivery(_own(webhook_id), delivery_id)])[0]


@blp.route("/<webhook_id>/deliveries/<int:delivery_id>/redeliver", methods=["POST"])
@protected(blp, SCOPE, errors=(404, 409))
@blp.response(202, DeliveryOut)
def redeliver(webhook_id, delivery_id):
    """Send a delivered or dead-lettered event again, as a new delivery"""
    endpoint = _own(webhook_id)
    row = _delivery(endpoint, delivery_id)
    if row.status == "PENDING" or D.get_or_none(
            (D.endpoint == endpoint) & (D.event == row.event_id) & (D.status == "PENDING")):
        raise ApiError(409, "this event is already queued for this endpoint")
    again = D.create(endpoint=endpoint, event=row.event_id, seq=row.seq, lane=row.lane)
    return _deliveries_out([_deliveries(endpoint).where(D.id == again.id).first()])[0]


@blp.route("/<webhook_id>/replay", methods=["POST"])
@protected(blp, SCOPE, errors=(400, 404, 409))
@blp.arguments(ReplayIn)
@blp.response(202, ReplayOut)
def replay(body, webhook_id):
    """Deliver every matching event after a cursor again (events already queued are kept)"""
    with db.atomic():
        endpoint = _own(webhook_id, lock=True)  # fan-out skips it (SKIP LOCKED) meanwhile
        last = events.last_seq(g.app.id)
        if body["after"] > last:
            raise ApiError(400, f"after is beyond the app's last event id {last}")
        oldest = Event.select(Event.seq).where(Event.app == g.app).order_by(Event.seq).first()
        if body["after"] < last and (oldest is None or oldest.seq > body["after"] + 1):
            raise ApiError(409, "events after that cursor are no longer kept (retention); "
                                f"the oldest kept id is {oldest.seq if oldest else 'none'}")
        # Never forward: events between the old cursor and `after` are not fanned out yet.
        cursor = min(body["after"], endpoint.cursor)
        WebhookEndpoint.update(cursor=cursor, updated_at=utcnow()).where(
            WebhookEndpoint.id == endpoint.id).execute()
    return {"cursor": cursor}
