"""What happened: the event feed (newest first, refreshing itself) and the action requests."""

from __future__ import annotations

from flask import abort, g, render_template, request

from thingbridge.actions.service import recent_requests
from thingbridge.console import bp
from thingbridge.models import ACTION_STATUSES
from thingbridge.outbox import events

PAGE = 50
# The type filter offers each type and each family of types.
TYPE_CHOICES = sorted({t.rsplit(".", 1)[0] + ".*" for t in events.EVENT_TYPES}
                      | set(events.EVENT_TYPES))


@bp.route("/events")
def event_feed():
    kind = request.args.get("type") or None
    subject = (request.args.get("subject") or "").strip() or None
    before = request.args.get("before", type=int)
    if kind not in (None, *TYPE_CHOICES) or (before is not None
                                             and not 0 < before <= events.MAX_ID):
        abort(400, "unknown event type or bad cursor")
    rows = events.read_newest(g.app.id, PAGE + 1, before, [kind] if kind else None, subject)
    return render_template("console/events.html", events=rows[:PAGE],
                           older=rows[PAGE - 1].seq if len(rows) > PAGE else None,
                           live=before is None, types=TYPE_CHOICES, kind=kind,
                           subject=subject or "", window=events.FILTER_WINDOW)


@bp.route("/actions")
def actions():
    status = request.args.get("status") or None
    if status not in (None, *ACTION_STATUSES):
        abort(400, "unknown status")
    return render_template("console/actions.html", requests=recent_requests(g.app, PAGE, status),
                           statuses=ACTION_STATUSES, status=status)
