"""Webhooks: the app's endpoints, one endpoint's deliveries with every attempt, and sending
again (one delivery, or every event after an id)."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from thingbridge.api.common import ID
from thingbridge.console import bp
from thingbridge.errors import ApiError
from thingbridge.models import DELIVERY_STATUSES
from thingbridge.outbox import webhook_endpoints
from thingbridge.outbox.events import MAX_ID

PAGE = 50
bp.add_app_template_global(webhook_endpoints.RECENT_DELIVERIES, "recent_deliveries")


@bp.route("/webhooks")
def webhooks():
    endpoints, health = webhook_endpoints.with_health(g.app)
    return render_template("console/webhooks.html", endpoints=endpoints, health=health)


@bp.route(f"/webhooks/<{ID}:webhook_id>")
def webhook(webhook_id):
    endpoint = webhook_endpoints.own_endpoint(g.app, webhook_id)
    status = request.args.get("status") or None
    if status not in (None, *DELIVERY_STATUSES):
        abort(400, "unknown status")
    newest = webhook_endpoints.page(endpoint, status, PAGE, newest_first=True)
    return render_template("console/webhook.html", endpoint=endpoint, status=status,
                           statuses=DELIVERY_STATUSES,
                           deliveries=webhook_endpoints.with_attempts(newest),
                           health=webhook_endpoints.delivery_health(endpoint.id))


@bp.route(f"/webhooks/<{ID}:webhook_id>/deliveries/<int:delivery_id>/redeliver",
          methods=["POST"])
def redeliver(webhook_id, delivery_id):
    endpoint = webhook_endpoints.own_endpoint(g.app, webhook_id)
    try:
        again = webhook_endpoints.redeliver(endpoint, delivery_id)
        flash(f"Event {again.seq} queued again as delivery {again.id}.", "info")
    except ApiError as exc:
        if exc.code == 404:
            raise
        flash(exc.description, "error")
    return redirect(url_for("console.webhook", webhook_id=endpoint.id))


@bp.route(f"/webhooks/<{ID}:webhook_id>/replay", methods=["POST"])
def replay(webhook_id):
    after = request.form.get("after", type=int)
    if after is None or not 0 <= after <= MAX_ID:
        flash("Replay needs an event id (0 replays every event still kept).", "error")
        return redirect(url_for("console.webhook", webhook_id=webhook_id))
    try:
        webhook_endpoints.replay(g.app, webhook_id, after)
        flash(f"Every matching event after {after} will be delivered again.", "info")
    except ApiError as exc:
        if exc.code == 404:
            raise
        flash(exc.description, "error")
    return redirect(url_for("console.webhook", webhook_id=webhook_id))
