"""Connector client lifecycle shared by the API, the OAuth callback and the workers."""

from __future__ import annotations

from thingbridge.db import db, locking, utcnow
from thingbridge.models import ConnectorClient, Thing
from thingbridge.outbox import events
from thingbridge.tasks import enqueue

POLL_TASK = "thingbridge.poll_client"


def client_data(client: ConnectorClient, **extra) -> dict:
    """An event's view of a client, in the clients API's own (snake_case) style."""
    return {"client_id": client.id, "connector_type_id": client.type_id, **extra}


def created(client: ConnectorClient) -> None:
    """Record a new client's event; call inside the transaction that created it."""
    events.emit(client.app_id, "connector.client.created", client.external_subject_id,
                client_data(client, status=client.status))


def schedule_first_poll(client: ConnectorClient) -> None:
    """Due now, and also enqueued directly so the first things appear without waiting for beat."""
    ConnectorClient.update(next_poll_at=utcnow(), updated_at=utcnow()).where(
        ConnectorClient.id == client.id).execute()
    enqueue(POLL_TASK, client.id)


def set_status(client: ConnectorClient, status: str, reason: str | None = None,
               **fields) -> bool:
    """Set status, reason and ``fields``; a real change of status also emits
    ``connector.client.status_changed``. True if the status changed."""
    now = utcnow()
    same = (ConnectorClient.id == client.id) & (ConnectorClient.status == status)
    # The common case (a poll of a STARTED client) is one UPDATE and no event.
    if ConnectorClient.update(status_reason=reason, updated_at=now, **fields).where(
            same).execute():
        return False
    with db.atomic():
        row = locking(ConnectorClient.select(ConnectorClient.status).where(
            ConnectorClient.id == client.id)).first()
        if row is None:
            return False  # deleted meanwhile
        ConnectorClient.update(status=status, status_reason=reason, updated_at=now,
                               **fields).where(ConnectorClient.id == client.id).execute()
        if row.status == status:
            return False  # a concurrent writer made the same change first
        events.emit(client.app_id, "connector.client.status_changed",
                    client.external_subject_id,
                    client_data(client, old_status=row.status, status=status,
                                status_reason=reason))
    return True


def delete_client(client: ConnectorClient) -> None:
    """Things first, then the client, in one transaction: a failure leaves both, and a retry of
    the DELETE finishes the job."""
    with db.atomic():
        thing_ids = [t.id for t in Thing.select(Thing.id).where(Thing.connector_client == client)]
        Thing.delete().where(Thing.connector_client == client).execute()
        client.delete_instance(recursive=False)
        events.emit_many(client.app_id, [
            *(events.Pending("thing.deleted", client.external_subject_id, {"thingId": tid})
              for tid in thing_ids),
            events.Pending("connector.client.deleted", client.external_subject_id,
                           client_data(client))])
