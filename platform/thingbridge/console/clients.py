"""Clients: the list with filters, one client's page, and what can be done to it."""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for

from thingbridge.api.common import ID
from thingbridge.connectors import consent, lifecycle
from thingbridge.connectors.registry import connector_classes, poll_interval
from thingbridge.connectors.service import app_client, app_clients
from thingbridge.console import bp
from thingbridge.models import CLIENT_STATUSES
from thingbridge.outbox.events import client_history
from thingbridge.things.reading import client_things

PAGE = 50
LAST_PAGE = 10**9  # its rows' offset stays a bigint


@bp.route("/clients")
def clients():
    connector = request.args.get("connector") or None
    status = request.args.get("status") or None
    subject = (request.args.get("subject") or "").strip() or None
    if connector not in (None, *connector_classes()) or status not in (None, *CLIENT_STATUSES):
        abort(400, "unknown connector or status")
    page = min(max(request.args.get("page", 1, type=int), 1), LAST_PAGE)
    rows = list(app_clients(g.app, connector, status, subject)
                .offset((page - 1) * PAGE).limit(PAGE + 1))
    return render_template("console/clients.html", clients=rows[:PAGE], page=page,
                           more=len(rows) > PAGE, connectors=list(connector_classes()),
                           statuses=CLIENT_STATUSES, connector=connector, status=status,
                           subject=subject or "")


@bp.route(f"/clients/<{ID}:client_id>")
def client(client_id):
    row = app_client(g.app, client_id)
    return render_template("console/client.html", client=row, history=client_history(row),
                           things=client_things(row.id), interval=poll_interval(row.type_id),
                           consents=consent.uses_consent(row.type_id), repair=_repair(row))


def _repair(row) -> str:
    """What ends a client's ERROR: a fixed instance (the provider refused the app's own
    credentials: no consent repairs that), else a consent or the client's configuration."""
    if (row.status_reason or "").startswith(lifecycle.INSTANCE_REFUSED):
        return "the instance's configuration is fixed"
    return "reauthorized" if consent.uses_consent(row.type_id) else \
        "its configuration is fixed"


@bp.route(f"/clients/<{ID}:client_id>/poll", methods=["POST"])
def poll_now(client_id):
    row = app_client(g.app, client_id)
    if row.status == "ERROR":
        flash(f"A client in ERROR is not polled until {_repair(row)}.", "error")
    else:
        lifecycle.schedule_first_poll(row)
        flash("Poll queued: the page shows its outcome once a worker has run it.", "info")
    return redirect(url_for("console.client", client_id=row.id))


@bp.route(f"/clients/<{ID}:client_id>/reauthorize", methods=["POST"])
def reauthorize(client_id):
    """A fresh consent for the same client, shown as a link for its end user: the developer
    following it would grant their own provider account to the user's client."""
    row = app_client(g.app, client_id)
    _, link = consent.reauthorize(g.app, row.external_subject_id, row.id)
    return render_template("console/reauthorize.html", client=row, link=link,
                           ttl=current_app.config["OAUTH_STATE_TTL"])


@bp.route(f"/clients/<{ID}:client_id>/delete", methods=["GET", "POST"])
def delete_client(client_id):
    row = app_client(g.app, client_id)
    if request.method != "POST":  # GET, and HEAD (Flask routes it here and CSRF exempts it)
        return render_template("console/client_delete.html", client=row,
                               things=len(client_things(row.id)))
    lifecycle.delete_client(row)
    flash(f"Deleted the {row.type_id} client of {row.external_subject_id} and its things.",
          "info")
    return redirect(url_for("console.clients"))
