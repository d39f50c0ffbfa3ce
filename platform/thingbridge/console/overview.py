"""The overview: the app's clients at a glance, how fresh their data is, how polls went in the
last hour, webhook delivery health and what is failing now."""

from __future__ import annotations

from flask import g, render_template

from thingbridge.actions.service import recent_requests
from thingbridge.connectors import poll_tally
from thingbridge.connectors.registry import poll_interval
from thingbridge.connectors.service import client_counts, freshness, troubled_clients
from thingbridge.console import bp, charts
from thingbridge.models import CLIENT_STATUSES
from thingbridge.outbox.webhook_endpoints import with_health


@bp.route("/")
def overview():
    app = g.app
    table: dict[str, dict[str, int]] = {}
    for type_id, status, clients, _ in client_counts(app):
        table.setdefault(type_id, dict.fromkeys(CLIENT_STATUSES, 0))[status] = clients
    fresh = freshness(app, {type_id: poll_interval(type_id) for type_id in table})
    polls = poll_tally.last_hour(app)
    endpoints, health = with_health(app)
    return render_template(
        "console/overview.html", clients=table, statuses=CLIENT_STATUSES,
        total=sum(sum(row.values()) for row in table.values()),
        fresh=charts.freshness_bars(fresh), polls=charts.poll_columns(polls),
        polled=(sum(ok for _, ok, _ in polls), sum(failed for _, _, failed in polls)),
        endpoints=endpoints, health=health,
        troubled=troubled_clients(app), failed_actions=recent_requests(app, 5, "FAILED"))
