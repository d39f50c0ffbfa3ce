"""/api/v1/webhooks: endpoints of the app, their deliveries, secret rotation and replay."""

from __future__ import annotations

import datetime
import logging

from flask import current_app, g
from flask.views import MethodView

from thingbridge.api import outside_calls
from thingbridge.api.common import ID, Blueprint, cursor_page, link, links, protected
from thingbridge.crypto import SecretKeyError
from thingbridge.db import db, utcnow
from thingbridge.errors import ApiError
from thingbridge.limits import quotas
from thingbridge.models import WebhookEndpoint
from thingbridge.outbox import events, webhook_endpoints, webhook_signing
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
log = logging.getLogger(__name__)
WEBHOOK, CREATED = "/api/v1/webhooks/{webhook_id}", "$response.body#/id"
WEBHOOK_OPERATIONS = [("GetWebhook", "", "get"), ("UpdateWebhook", "", "patch"),
                      ("DeleteWebhook", "", "delete"), ("RotateSecret", "/rotate-secret", "post"),
                      ("ListDeliveries", "/deliveries", "get"), ("Replay", "/replay", "post")]


def _check_url(url: str) -> None:
    if problem := outside_calls.url_problem(url, g.app.id):
        raise ApiError(400, f"url {problem}", "INVALID_WEBHOOK_URL")


def _own(webhook_id: str, lock: bool = False) -> WebhookEndpoint:
    return webhook_endpoints.own_endpoint(g.app, webhook_id, lock)


@blp.route("")
class Webhooks(MethodView):
    @protected(blp, SCOPE, errors=(400, 429, 503))
    @blp.arguments(WebhookIn)
    @blp.response(201, WebhookOut)
    @blp.doc(**links(201, **{name: link(WEBHOOK + suffix, method, webhook_id=CREATED)
                             for name, suffix, method in WEBHOOK_OPERATIONS}))
    def post(self, body):
        """Register an endpoint for events from now on; the signing secret is shown only here"""
        _check_url(body["url"])
        secret = webhook_signing.new_secret()
        with quotas.room_for("WEBHOOKS_PER_APP", g.app.id,
                             webhook_endpoints.app_endpoints(g.app).count,
                             "webhooks for this app"):
            endpoint = WebhookEndpoint.create(app=g.app, url=body["url"],
                                              event_types=body["event_types"],
                                              description=body["description"],
                                              secrets=[{"secret": secret, "expires_at": None}],
                                              cursor=events.last_seq(g.app.id))
        endpoint.secret = secret  # the one answer that shows it
        return endpoint

    @protected(blp, SCOPE, errors=())
    @blp.response(200, WebhookOut(many=True))
    def get(self):
        """The app's endpoints (secrets are never returned)"""
        return webhook_endpoints.app_endpoints(g.app)


@blp.route(f"/<{ID}:webhook_id>")
class WebhookById(MethodView):
    @protected(blp, SCOPE, errors=(404,))
    @blp.response(200, WebhookOut)
    def get(self, webhook_id):
        """One endpoint"""
        return _own(webhook_id)

    @protected(blp, SCOPE, errors=(400, 404, 503))
    @blp.arguments(WebhookPatch)
    @blp.response(200, WebhookOut)
    def patch(self, body, webhook_id):
        """Change url, event types or description (pending deliveries go to the new url)"""
        endpoint = _own(webhook_id)
        if "url" in body:
            _check_url(body["url"])
        # Only the fields sent: a whole-row save would write back a stale cursor or secrets.
        WebhookEndpoint.update(updated_at=utcnow(), **body).where(
            WebhookEndpoint.id == endpoint.id).execute()
        return _own(webhook_id)

    @protected(blp, SCOPE, errors=(404,))
    @blp.response(204)
    def delete(self, webhook_id):
        """Remove an endpoint with its deliveries"""
        _own(webhook_id).delete_instance(recursive=True)


@blp.route(f"/<{ID}:webhook_id>/rotate-secret", methods=["POST"])
@protected(blp, SCOPE, errors=(404,))
@blp.response(200, SecretRotated)
def rotate_secret(webhook_id):
    """New signing secret; the previous one also signs for a while

    For THINGBRIDGE_WEBHOOK_SECRET_OVERLAP seconds (default 86400: 24 hours).
    """
    with db.atomic():
        endpoint = _own(webhook_id, lock=True)
        now = utcnow()
        overlap = datetime.timedelta(seconds=current_app.config["WEBHOOK_SECRET_OVERLAP"])
        try:
            stored = endpoint.secrets
        except SecretKeyError as exc:
            # Secrets no configured key reads sign nothing: the new one replaces them, which
            # is how the app gets its deliveries going again without the operator.
            log.warning("webhook %s: %s; replaced by a rotation", endpoint.id, exc)
            stored = []
        secret, secrets = webhook_signing.rotate(stored, now, overlap)
        WebhookEndpoint.update(secrets=secrets, updated_at=now).where(
            WebhookEndpoint.id == endpoint.id).execute()
    return {"secret": secret, "previous_valid_until": now + overlap if stored else None}


@blp.route(f"/<{ID}:webhook_id>/deliveries", methods=["GET"])
@protected(blp, SCOPE, errors=(400, 404))
@blp.arguments(DeliveriesQuery, location="query")
@blp.response(200, DeliveryPage)
def list_deliveries(args, webhook_id):
    """Deliveries with every attempt, oldest first; filter by status (DEAD: dead letters)"""
    rows = webhook_endpoints.with_attempts(webhook_endpoints.page(
        _own(webhook_id), args.get("status"), args["limit"] + 1, args["after"]))
    return cursor_page(rows, args, lambda delivery: delivery.id)


DELIVERY = f"/<{ID}:webhook_id>/deliveries/<int(max={MAX_ID}):delivery_id>"


@blp.route(DELIVERY, methods=["GET"])
@protected(blp, SCOPE, errors=(404,))
@blp.response(200, DeliveryOut)
def get_delivery(webhook_id, delivery_id):
    """One delivery with every attempt"""
    return webhook_endpoints.delivery(_own(webhook_id), delivery_id)


@blp.route(f"{DELIVERY}/redeliver", methods=["POST"])
@protected(blp, SCOPE, errors=(404, 409))
@blp.response(202, DeliveryOut)
@blp.doc(**links(202, GetDelivery=link(WEBHOOK + "/deliveries/{delivery_id}", "get",
                                       webhook_id="$request.path.webhook_id",
                                       delivery_id="$response.body#/id")))
def redeliver(webhook_id, delivery_id):
    """Send a delivered or dead-lettered event again, as a new delivery"""
    return webhook_endpoints.redeliver(_own(webhook_id), delivery_id)


@blp.route(f"/<{ID}:webhook_id>/replay", methods=["POST"])
@protected(blp, SCOPE, errors=(400, 404, 409, 429))
@blp.arguments(ReplayIn)
@blp.response(202, ReplayOut)
def replay(body, webhook_id):
    """Deliver every matching event after a cursor again (events already queued are kept)"""
    return {"cursor": webhook_endpoints.replay(g.app, webhook_id, body["after"])}
