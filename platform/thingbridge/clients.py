"""Connector client lifecycle shared by the API, the OAuth callback and the workers."""

from __future__ import annotations

from thingbridge.db import db, utcnow
from thingbridge.models import ConnectorClient, Thing
from thingbridge.queue import enqueue

POLL_TASK = "thingbridge.poll_client"


def schedule_first_poll(client: ConnectorClient) -> None:
    """Due now, and also enqueued directly so the first things appear without waiting for beat."""
    ConnectorClient.update(next_poll_at=utcnow(), updated_at=utcnow()).where(
        ConnectorClient.id == client.id).execute()
    enqueue(POLL_TASK, client.id)


def set_status(client_id: str, status: str, reason: str | None = None, **fields) -> None:
    ConnectorClient.update(status=status, status_reason=reason, updated_at=utcnow(),
                           **fields).where(ConnectorClient.id == client_id).execute()


def delete_client(client: ConnectorClient) -> None:
    """Things first, then the client, in one transaction: a failure leaves both, and a retry of
    the DELETE finishes the job."""
    with db.atomic():
        Thing.delete().where(Thing.connector_client == client).execute()
        client.delete_instance(recursive=False)
