"""/api/v1/events: the app's event feed, read from the outbox in order."""

from __future__ import annotations

from flask import g

from thingbridge.api.common import Blueprint, cursor_page, protected
from thingbridge.outbox import events
from thingbridge.schemas.events import EventPage, EventsQuery

blp = Blueprint("events", __name__, url_prefix="/api/v1/events",
                description="Every change to the app's clients, things and actions, in order")
SCOPE = "thingbridge.events"


@blp.route("", methods=["GET"])
@protected(blp, SCOPE, errors=(400,))
@blp.arguments(EventsQuery, location="query")
@blp.response(200, EventPage)
def list_events(args):
    """Events after a cursor, oldest first (all subjects of the app)"""
    rows = events.read_after(g.app.id, args["after"], args["limit"] + 1)
    return cursor_page(rows, args, lambda event: event.seq)
