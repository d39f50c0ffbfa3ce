"""A connector client's life: created, scheduled, polled (or failing), its status moved with an
event, deleted with its things. Shared by the API, the OAuth callback and the workers.

Lock order everywhere a transaction takes several of these rows: the client row first, then its
things, then the app's event counter (``events.emit_many``, always last). A transaction that
takes several clients takes them in the order of their ids.
"""

from __future__ import annotations

import datetime
import uuid
from functools import cache

from flask import current_app

from thingbridge import backoff, crypto
from thingbridge.connectors.contract import MAX_REASON, ConnectorError, InstanceRefused
from thingbridge.connectors.registry import installed, poll_interval
from thingbridge.db import db, is_postgres, locking, utcnow, write_transaction
from thingbridge.models import ConnectorClient, ConnectorInstance, Thing
from thingbridge.outbox import events
from thingbridge.outbox.events import Pending
from thingbridge.schemas.common import storable
from thingbridge.sql import Statement, param
from thingbridge.tasks import enqueue_polls_soon, enqueue_soon
from thingbridge.things import poll_sql, sync
from thingbridge.things.poll_sql import RELEASED

POLL_TASK = "thingbridge.poll_client"
# Why a client is STARTING (an ERROR's reason comes from whatever failed).
AWAITING_CONSENT = "waiting for the end user's consent"
AWAITING_FIRST_POLL = "waiting for the first poll"
CONSENT_GIVEN = "consent given; waiting for the first poll"
RECONFIGURED = "configuration changed; waiting for the first poll"
INSTANCE_FIXED = "instance configuration changed; waiting for the first poll"
# How an ERROR the app repairs once, on the instance, begins: the app can tell it from a grant
# only the end user can renew, and fixing the instance finds the clients it stopped.
INSTANCE_REFUSED = ("the provider refused the connector instance's configuration (fix it with "
                    "PATCH on the instance)")
UNREADABLE_SECRETS = crypto.unreadable("this client's stored secrets")
# A transient failure waits this long, doubling per failure in a row, up to the cap.
RETRY_BASE, MAX_BACKOFF = 30.0, 3600.0
# Seconds between an accepted action and the poll that reads the device's new state.
REFRESH_SETTLE = 1.0


def client_data(client: ConnectorClient, **extra) -> dict:
    """An event's view of a client, in the clients API's own (snake_case) style."""
    return {"client_id": client.id, "connector_type_id": client.type_id, **extra}


def created(client: ConnectorClient, poll_now: bool) -> None:
    """Inside the transaction that created the client: its event, and (unless it waits for
    the end user's consent) its first poll as due now, for the dispatcher if nothing sooner."""
    if poll_now:
        ConnectorClient.update(next_poll_at=utcnow()).where(
            ConnectorClient.id == client.id).execute()
    events.emit(client.app_id, "connector.client.created", client.external_subject_id,
                client_data(client, status=client.status))


def schedule_first_poll(client: ConnectorClient) -> None:
    """Due now, and sent at once: read the client's devices now rather than at its next
    scheduled poll (asked for in the console)."""
    ConnectorClient.update(next_poll_at=utcnow(), updated_at=utcnow()).where(
        ConnectorClient.id == client.id).execute()
    poll_soon(client)


def refresh_soon(client: ConnectorClient) -> None:
    """After an action the provider accepted: poll the client ``REFRESH_SETTLE`` seconds from
    now to read the device's new state. The wait lets the actions of a burst share one poll
    (without it, actions a poll's length apart each brought their own, which competed with the
    next action for the worker); a client already due by then that no poll holds has a poll
    coming (sent already, or the dispatcher's)."""
    now = utcnow()
    if _refresh(is_postgres()).run(
            id=client.id, now=now, at=now + datetime.timedelta(seconds=REFRESH_SETTLE)).rowcount:
        poll_soon(client, countdown=REFRESH_SETTLE)


@cache
def _refresh(postgres: bool) -> Statement:
    # Built once: it runs after every action, and peewee spent more CPU building it than the
    # database spent running it.
    now, at = param("now"), param("at")
    coming = ((ConnectorClient.next_poll_at <= at)
              & (ConnectorClient.leased_until.is_null() | (ConnectorClient.leased_until <= now)))
    return Statement.build(ConnectorClient.update(
        {ConnectorClient.next_poll_at: at, ConnectorClient.updated_at: now}).where(
        (ConnectorClient.id == param("id")) & ~coming))


def poll_soon(client: ConnectorClient, countdown: float | None = None) -> None:
    """After the commit that made the client due (``countdown``: due that many seconds from
    now): send its poll, so its things appear without waiting for the dispatcher, which still
    finds it if the broker is down or the polls' queue is full. A poll a countdown delays
    (after an action) waits in a worker, not in the queue."""
    if countdown is None:
        enqueue_polls_soon(POLL_TASK, [(client.id, str(uuid.uuid4()))])
    else:
        enqueue_soon(POLL_TASK, client.id, str(uuid.uuid4()), countdown=countdown)


def take(client_id: str, token: str | None) -> ConnectorClient | None:
    """Hold the client for one poll: a task the dispatcher sent brings the token of its claim,
    one sent directly (or a retry of either) a token of its own and takes the client if it is
    free and due. The client with its instance, or None if another poll holds it, it was
    polled since the task was sent, or it was deleted. Every outcome of the poll releases it."""
    now = utcnow()
    lease = datetime.timedelta(seconds=current_app.config["TASK_LEASE"])
    return poll_sql.take_client(client_id, token or str(uuid.uuid4()), now, now + lease)


def release(client: ConnectorClient, **fields) -> None:
    ConnectorClient.update(**RELEASED, **fields).where(ConnectorClient.id == client.id).execute()


def transition(client: ConnectorClient, status: str, reason: str | None = None,
               **fields) -> list[Pending] | None:
    """Inside the caller's transaction: lock the client row and set status, reason and
    ``fields``; returns the status_changed event to emit if the status really changed ([] if it
    was already ``status``), or None if the client is gone."""
    row = locking(ConnectorClient.select(ConnectorClient.status).where(
        ConnectorClient.id == client.id)).first()
    if row is None:
        return None
    now = utcnow()
    if row.status != status:
        fields["status_since"] = now
    ConnectorClient.update(status=status, status_reason=reason, updated_at=now,
                           **fields).where(ConnectorClient.id == client.id).execute()
    if row.status == status:
        return []
    return [Pending("connector.client.status_changed", client.external_subject_id,
                    client_data(client, old_status=row.status, status=status,
                                status_reason=reason))]


def set_status(client: ConnectorClient, status: str, reason: str | None = None,
               **fields) -> bool:
    """Set status, reason and ``fields`` in a transaction of its own, with the
    ``connector.client.status_changed`` event if the status changed. True if it changed."""
    # The common case (a client already in that status) is one UPDATE and no transaction.
    same = (ConnectorClient.id == client.id) & (ConnectorClient.status == status)
    if ConnectorClient.update(status_reason=reason, updated_at=utcnow(), **fields).where(
            same).execute():
        return False
    with db.atomic():
        said = transition(client, status, reason, **fields)
        events.emit_many(client.app_id, said or [])
    return bool(said)


def _next_poll(client: ConnectorClient) -> dict:
    now = utcnow()
    return dict(now=now, next_poll_at=now + backoff.jittered(poll_interval(client.type_id)))


def mark_polled(client: ConnectorClient, readings: list[sync.ValueChange] = ()) -> bool:
    """A successful poll of a STARTED client that brought nothing but new ``readings`` (none
    for a steady poll): one statement records it, releasing the client, writes the readings
    and appends their events. False if the poll must take its transaction: the client is not
    STARTED (any more) and ``record_success`` must move it, or readings on SQLite (which runs
    no write in a CTE)."""
    polled = dict(client_id=client.id, status="STARTED", **_next_poll(client),
                  seen=client.next_poll_at)
    if not readings:
        return poll_sql.mark_polled(**polled)
    return is_postgres() and sync.record_readings(client, readings, polled)


def record_success(client: ConnectorClient) -> list[Pending] | None:
    """Inside the poll's transaction, before its things are written (this locks the client
    row): record the success, STARTED from any status. Returns the events to emit, or None if
    the client is gone."""
    if mark_polled(client):
        return []
    scheduled = _next_poll(client)
    return transition(client, "STARTED", None, last_polled_at=scheduled["now"],
                      last_success_at=scheduled["now"], failure_count=0,
                      next_poll_at=scheduled["next_poll_at"], **RELEASED)


def record_transient_failure(client: ConnectorClient, reason: str,
                             retry_after: float | None) -> None:
    """Keep the status, note the reason and poll again after a backoff."""
    failures = client.failure_count + 1
    wait = backoff.delay(failures, RETRY_BASE, MAX_BACKOFF, retry_after)
    now = utcnow()
    release(client, failure_count=failures, status_reason=reason, updated_at=now,
            last_polled_at=now, next_poll_at=now + datetime.timedelta(seconds=wait))


def record_unreadable_secrets(client_id: str) -> None:
    """The poll that held the client met a stored secret (its configuration, tokens or its
    instance's) the configured keys cannot decrypt: a transient failure with that reason, so
    the client shows why it is not polled and is tried again, backing off, until the key is
    restored. Reads only columns that are not encrypted."""
    client = ConnectorClient.select(ConnectorClient.id, ConnectorClient.failure_count).where(
        ConnectorClient.id == client_id).first()
    if client is not None:
        record_transient_failure(client, UNREADABLE_SECRETS, None)


def error_reason(exc: ConnectorError, context: str = "") -> str:
    """What an ERROR from ``exc`` says: a refusal of the instance's own credentials says so
    first; any other reason follows ``context``."""
    if isinstance(exc, InstanceRefused):
        return storable(f"{INSTANCE_REFUSED}: {exc.reason}", MAX_REASON)
    return storable(f"{context}{exc.reason}", MAX_REASON)


def record_error(client: ConnectorClient, exc: ConnectorError) -> bool:
    """A poll the app or the end user must act on (grant revoked, configuration refused): ERROR
    with the reason, and no poll until they do (reauthorize, PATCH the configuration).

    False, and the client due again at once, if what the poll sent the provider was replaced
    while it ran: the instance's configuration (the app repaired it), the client's own (the
    app changed it), or its grant (the end user consented again, which started the client
    again; a refresh changes the tokens, not the grant). The answer to the old ones must not
    undo the repair, which found the client working and so started nothing again."""
    reason, now = error_reason(exc), utcnow()
    with write_transaction():
        current = locking(ConnectorClient.select(
            ConnectorClient.configuration, ConnectorClient.granted_at).where(
            ConnectorClient.id == client.id)).first()
        if current is None:
            return True  # deleted meanwhile: nothing to record
        # Read after the client row is locked (a lock a token refresh may hold for its call),
        # and FOR SHARE: a repair writes the instance before it looks for stopped clients, so
        # either it finds this client in ERROR and starts it again, or this waits for it and
        # finds the new configuration.
        instance = locking(ConnectorInstance.select(ConnectorInstance.configuration).where(
            ConnectorInstance.id == client.instance.id), share=True).first()
        if (instance is not None and instance.configuration != client.instance.configuration
                or current.configuration != client.configuration
                or current.granted_at != client.granted_at):
            release(client, last_polled_at=now, next_poll_at=now)
            return False
        events.emit_many(client.app_id, transition(
            client, "ERROR", reason, next_poll_at=None, last_polled_at=now, **RELEASED) or [])
    return True


def restart(client: ConnectorClient, reason: str, **fields) -> None:
    """Back to STARTING with ``fields`` (new tokens, a new configuration) and due at once, in
    one transaction; the same client, so its id, mappings and things stay."""
    with db.atomic():
        events.emit_many(client.app_id, transition(client, "STARTING", reason, failure_count=0,
                                                   next_poll_at=utcnow(), **fields) or [])
    poll_soon(client)


def grant(client: ConnectorClient, granted: dict) -> None:
    """The end user's consent (``granted``: the tokens it brought) starts the client again."""
    restart(client, CONSENT_GIVEN, granted_at=utcnow(), **granted)


def reconfigure_instance(instance: ConnectorInstance, configuration: dict) -> None:
    """Store the instance's new configuration and, in the same transaction, start again the
    clients a refusal of the old one stopped: the same clients with their grants (one that
    never got a grant still needs its end user's consent), each with its event. One statement
    moves them all, however many: an app whose secret was rotated may have thousands, and a
    transaction each held the request past gunicorn's timeout. Then the first polls are sent."""
    now = utcnow()
    refused = ((ConnectorClient.instance == instance.id) & (ConnectorClient.status == "ERROR")
               & ConnectorClient.status_reason.startswith(INSTANCE_REFUSED))
    if installed(instance.type_id).auth_kind == "oauth2":
        refused &= ConnectorClient.tokens.is_null(False)
    with db.atomic():
        ConnectorInstance.update(configuration=configuration).where(
            ConnectorInstance.id == instance.id).execute()
        in_order = locking(ConnectorClient.select(ConnectorClient.id).where(refused)
                           .order_by(ConnectorClient.id))
        restarted = sorted(ConnectorClient.update(
            status="STARTING", status_reason=INSTANCE_FIXED, status_since=now, updated_at=now,
            failure_count=0, next_poll_at=now).where(
            refused & ConnectorClient.id.in_(in_order)).returning(
            ConnectorClient.id, ConnectorClient.type_id,
            ConnectorClient.external_subject_id).execute(), key=lambda client: client.id)
        events.emit_many(instance.app_id, [
            Pending("connector.client.status_changed", client.external_subject_id,
                    client_data(client, old_status="ERROR", status="STARTING",
                                status_reason=INSTANCE_FIXED)) for client in restarted])
    # As many as the dispatcher sends at a time: sending each costs the request about half a
    # millisecond, and the dispatcher sends the others (they are due now).
    first = restarted[:current_app.config["DISPATCH_BATCH"]]
    enqueue_polls_soon(POLL_TASK, [(client.id, str(uuid.uuid4())) for client in first])


def postpone(client: ConnectorClient, until) -> None:
    """Not polled before ``until`` (the provider budget is spent), with no failure counted."""
    release(client, next_poll_at=until + backoff.jittered(5, 0.2))


def delete_client(client: ConnectorClient) -> None:
    """Things first, then the client, in one transaction: a failure leaves both, and a retry of
    the DELETE finishes the job. The client row is locked before its things are touched, the
    order a poll takes them in, so a poll running meanwhile never deadlocks with it."""
    with db.atomic():
        list(locking(ConnectorClient.select(ConnectorClient.id)
                     .where(ConnectorClient.id == client.id)))
        thing_ids = [t.id for t in Thing.select(Thing.id).where(Thing.connector_client == client)]
        Thing.delete().where(Thing.connector_client == client).execute()
        client.delete_instance(recursive=False)
        events.emit_many(client.app_id, [
            *(Pending("thing.deleted", client.external_subject_id, {"thingId": tid})
              for tid in thing_ids),
            Pending("connector.client.deleted", client.external_subject_id,
                    client_data(client))])

