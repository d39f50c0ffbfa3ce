"""Webhook endpoints of an app, one delivery per (endpoint, event), one row per attempt."""

from __future__ import annotations

from peewee import (
    BigAutoField,
    BigIntegerField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from thingbridge.crypto import LazyEncryptedJSONField
from thingbridge.db import utcnow
from thingbridge.models.apps import App
from thingbridge.models.base import BaseModel, JSONField, UUIDKey
from thingbridge.models.events import Event

DELIVERY_STATUSES = ("PENDING", "DELIVERED", "DEAD")


class WebhookEndpoint(BaseModel):
    id = UUIDKey()
    app = ForeignKeyField(App, backref="webhooks", on_delete="CASCADE")
    url = TextField()
    description = CharField(max_length=500, default="")
    event_types = JSONField(default=list)  # patterns: "thing.created", "thing.*", "*"
    # [{"secret": "whsec_...", "expires_at": iso8601 | null}], newest first; encrypted.
    secrets = LazyEncryptedJSONField()  # left out of reads that do not sign (ENDPOINT_PLAIN)
    # Last event seq of the app that fan-out has turned into deliveries for this endpoint.
    cursor = BigIntegerField(default=0)
    updated_at = DateTimeField(default=utcnow)
    # The app's last event when it last asked for a replay: the replay is in flight until
    # every delivery up to it has left PENDING (a fair-share limit counts these).
    replay_until = BigIntegerField(null=True)
    # The error of the endpoint's latest failed attempt, until an attempt succeeds: what the
    # app reads first when deliveries stall (a receiver down, a secret no key decrypts).
    last_error = TextField(null=True)
    last_error_at = DateTimeField(null=True)


class WebhookDelivery(BaseModel):
    """PENDING until delivered (2xx) or dead-lettered. Deliveries of one endpoint and subject
    (the lane) go out strictly in event order: only the lane's oldest PENDING one is sent."""

    id = BigAutoField()
    # The (endpoint, id) index serves lookups by endpoint: a page of an endpoint's deliveries
    # without reading its older ones or the other endpoints'.
    endpoint = ForeignKeyField(WebhookEndpoint, backref="deliveries", on_delete="CASCADE",
                               index=False)
    event = ForeignKeyField(Event, on_delete="CASCADE")
    seq = BigIntegerField()
    lane = CharField(max_length=255, default="")
    status = CharField(max_length=16, default="PENDING")
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(default=utcnow)
    lease_token = CharField(max_length=36, null=True)
    leased_until = DateTimeField(null=True)
    last_status_code = IntegerField(null=True)
    last_error = TextField(null=True)
    finished_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("endpoint", "lane", "status", "seq"), False),
            (("status", "next_attempt_at"), False),
            (("endpoint", "id"), False),
        )


class WebhookAttempt(BaseModel):
    delivery = ForeignKeyField(WebhookDelivery, backref="attempt_rows", on_delete="CASCADE")
    status_code = IntegerField(null=True)
    error = TextField(null=True)
    duration_ms = IntegerField()


# Every endpoint column but the encrypted secrets: what reads that do not sign select, so an
# endpoint whose secrets no configured key decrypts is still fanned out, listed and shown.
ENDPOINT_PLAIN = [field for field in WebhookEndpoint._meta.sorted_fields
                  if field is not WebhookEndpoint.secrets]
