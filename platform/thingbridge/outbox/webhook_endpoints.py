"""An app's webhook endpoints and their deliveries as the API and the console find and act on
them: ownership (another app's endpoint is 404), deliveries with their attempts, redelivery
and replay."""

from __future__ import annotations

from peewee import SQL, fn, prefetch

from thingbridge import db
from thingbridge.db import locking, utcnow
from thingbridge.errors import ApiError, found
from thingbridge.limits import quotas
from thingbridge.models import (
    ENDPOINT_PLAIN,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from thingbridge.outbox import events
from thingbridge.outbox.events import MAX_ID


def app_endpoints(app):
    """The app's endpoints without their secrets (see ``ENDPOINT_PLAIN``)."""
    return WebhookEndpoint.select(*ENDPOINT_PLAIN).where(WebhookEndpoint.app == app).order_by(
        WebhookEndpoint.created_at)


def own_endpoint(app, webhook_id: str, lock: bool = False) -> WebhookEndpoint:
    """The app's endpoint; ``lock`` (inside a transaction) holds its row against concurrent
    rotations, replays and fan-out until commit. Its ``secrets`` are read (and decrypted)
    when used: an endpoint whose secrets no key decrypts is still shown."""
    query = WebhookEndpoint.select(*ENDPOINT_PLAIN).where((WebhookEndpoint.id == webhook_id)
                                                          & (WebhookEndpoint.app == app))
    return found((locking(query) if lock else query).first(), "webhook")


def _with_events():
    return WebhookDelivery.select(
        WebhookDelivery, Event.id, Event.type, Event.external_subject_id).join(Event)


def deliveries(endpoint: WebhookEndpoint):
    """The endpoint's deliveries, each with its event's type and subject."""
    return _with_events().where(WebhookDelivery.endpoint == endpoint)


def page(endpoint: WebhookEndpoint, status: str | None, limit: int, after: int = 0,
         newest_first: bool = False):
    """A page of the endpoint's deliveries in id order (after the id ``after``, or the newest
    first), as :func:`deliveries`. The page's ids are chosen first, from the ``(endpoint_id,
    id)`` index alone (no table read, for pages autovacuum has marked all-visible), so a
    planner's custom plan no longer walks every endpoint's deliveries in id order, reading
    those of other apps and of the endpoint's history (a generic plan still would, but costs
    far more, so PostgreSQL keeps the custom one)."""
    order = WebhookDelivery.id.desc() if newest_first else WebhookDelivery.id
    ids = WebhookDelivery.select(WebhookDelivery.id).where(
        (WebhookDelivery.endpoint == endpoint) & (WebhookDelivery.id > after))
    if status:
        ids = ids.where(WebhookDelivery.status == status)
    # The rows by id alone: the endpoint again would let a planner filter a scan by it.
    return _with_events().where(
        WebhookDelivery.id.in_(ids.order_by(order).limit(limit))).order_by(order)


def with_attempts(query) -> list[WebhookDelivery]:
    """Run a deliveries ``query`` with every delivery's ``attempt_rows`` attached: two
    queries however many deliveries."""
    return prefetch(query, WebhookAttempt.select().order_by(WebhookAttempt.id))


def delivery(endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    rows = []
    if delivery_id <= MAX_ID:  # a larger id cannot exist (BIGINT)
        rows = with_attempts(deliveries(endpoint).where(WebhookDelivery.id == delivery_id))
    return found(rows[0] if rows else None, "delivery")


def redeliver(endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    """Queue a delivered or dead-lettered delivery's event again, as a new delivery."""
    row = delivery(endpoint, delivery_id)
    if row.status == "PENDING" or WebhookDelivery.get_or_none(
            (WebhookDelivery.endpoint == endpoint) & (WebhookDelivery.event == row.event_id)
            & (WebhookDelivery.status == "PENDING")):
        raise ApiError(409, "this event is already queued for this endpoint")
    again = WebhookDelivery.create(endpoint=endpoint, event=row.event_id, seq=row.seq,
                                   lane=row.lane)
    return delivery(endpoint, again.id)


def replay(app, webhook_id: str, after: int) -> int:
    """Deliver every matching event after ``after`` again (events already queued are kept);
    returns the endpoint's new cursor. One app's replays run one at a time, from before
    their count to their commit: the endpoint's lock alone let two replays on two endpoints
    each count the other's as not yet in flight."""
    with db.write_transaction():
        quotas.serialize("REPLAYS_IN_FLIGHT", app.id)
        endpoint = own_endpoint(app, webhook_id, lock=True)  # fan-out skips it meanwhile
        last = events.last_seq(app.id)
        if after > last:
            raise ApiError(400, f"after is beyond the app's last event id {last}")
        oldest = Event.select(Event.seq).where(Event.app == app).order_by(Event.seq).first()
        if after < last and (oldest is None or oldest.seq > after + 1):
            raise ApiError(409, "events after that cursor are no longer kept (retention); "
                                f"the oldest kept id is {oldest.seq if oldest else 'none'}")
        quotas.check_size("REPLAYS_IN_FLIGHT", replays_in_flight(app), "replays in flight")
        # Never forward: events between the old cursor and `after` are not fanned out yet.
        cursor = min(after, endpoint.cursor)
        WebhookEndpoint.update(cursor=cursor, updated_at=utcnow(), replay_until=last).where(
            WebhookEndpoint.id == endpoint.id).execute()
    return cursor


def replays_in_flight(app) -> int:
    """The app's endpoints still delivering what a replay asked for."""
    pending = WebhookDelivery.select(WebhookDelivery.id).where(
        (WebhookDelivery.endpoint == WebhookEndpoint.id) & (WebhookDelivery.status == "PENDING")
        & (WebhookDelivery.seq <= WebhookEndpoint.replay_until))
    return WebhookEndpoint.select().where(
        (WebhookEndpoint.app == app) & WebhookEndpoint.replay_until.is_null(False)
        & ((WebhookEndpoint.cursor < WebhookEndpoint.replay_until) | fn.EXISTS(pending))).count()


RECENT_DELIVERIES = 1000  # what the console's delivery health counts, per endpoint


def delivery_health(endpoint_id: str) -> dict[str, int]:
    """How many of the endpoint's newest ``RECENT_DELIVERIES`` deliveries are PENDING,
    DELIVERED and DEAD. It reads at most that many, newest first along the endpoint's own
    index: counting every delivery kept (7 days of them) took 350 ms per console page at 2
    million."""
    newest = (WebhookDelivery.select(WebhookDelivery.status)
              .where(WebhookDelivery.endpoint == endpoint_id)
              .order_by(WebhookDelivery.id.desc()).limit(RECENT_DELIVERIES).alias("newest"))
    return dict(WebhookDelivery.select(newest.c.status, fn.COUNT(SQL("*"))).from_(newest)
                .group_by(newest.c.status).tuples())


def with_health(app) -> tuple[list[WebhookEndpoint], dict[str, dict[str, int]]]:
    """The app's endpoints (as ``app_endpoints``), and each one's delivery health by id."""
    endpoints = list(app_endpoints(app))
    return endpoints, {endpoint.id: delivery_health(endpoint.id) for endpoint in endpoints}
