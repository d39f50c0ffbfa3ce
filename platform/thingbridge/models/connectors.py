"""Connector descriptions, instances (one per app and provider), clients (one per end user)."""

from __future__ import annotations

from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from thingbridge.crypto import EncryptedJSONField
from thingbridge.db import utcnow
from thingbridge.models.apps import App
from thingbridge.models.base import BaseModel, JSONField, UUIDKey

CLIENT_STATUSES = ("STARTING", "STARTED", "ERROR")


class ConnectorDescription(BaseModel):
    # Stable integer ids: synced from plugins at startup, never renumbered.
    id = IntegerField(primary_key=True)
    type_id = CharField(max_length=100, unique=True)
    name = CharField(max_length=200)
    description = TextField(default="")
    logo = TextField(default="")
    sample_instance_configuration = JSONField(default=dict)
    sample_client_configuration = JSONField(default=dict)


class ConnectorInstance(BaseModel):
    id = UUIDKey()
    app = ForeignKeyField(App, backref="instances", on_delete="CASCADE")
    type_id = CharField(max_length=100)
    configuration = EncryptedJSONField()

    class Meta:
        indexes = ((("app", "type_id"), True),)


class ConnectorClient(BaseModel):
    id = UUIDKey()
    # The (app, type, subject) index serves lookups by app; polls update this row constantly.
    app = ForeignKeyField(App, backref="clients", on_delete="CASCADE", index=False)
    instance = ForeignKeyField(ConnectorInstance, backref="clients", on_delete="RESTRICT")
    type_id = CharField(max_length=100)
    external_subject_id = CharField(max_length=255)
    configuration = EncryptedJSONField(null=True)
    status = CharField(max_length=16, default="STARTING")
    status_reason = TextField(null=True)
    status_since = DateTimeField(default=utcnow)
    tokens = EncryptedJSONField(null=True)
    token_expires_at = DateTimeField(null=True)
    # The end user's latest consent: a poll refused under an older grant must not stop a
    # client this one started again (a refresh changes the tokens, not this).
    granted_at = DateTimeField(null=True)
    next_poll_at = DateTimeField(null=True)
    last_polled_at = DateTimeField(null=True)  # the provider was last asked, with any outcome
    last_success_at = DateTimeField(null=True)
    failure_count = IntegerField(default=0)
    updated_at = DateTimeField(default=utcnow)
    # The poll task that holds the client (see polling.py), until the lease runs out.
    lease_token = CharField(max_length=36, null=True)
    leased_until = DateTimeField(null=True)

    class Meta:
        # (app, next_poll_at): the dispatcher reads each app's longest-waiting clients.
        indexes = ((("app", "type_id", "external_subject_id"), True),
                   (("app", "next_poll_at"), False))


class OAuthState(BaseModel):
    """A pending provider consent, waiting for the provider's callback (a ``state``) or, with
    the instance option ``confirm_consent``, for the app's confirmation (a ``confirmation``
    code; the granted ``tokens`` wait here). Single-use (deleted as it is taken) and expiring
    (deleted by a periodic task); only the hash of the state or code is stored."""

    state_hash = CharField(max_length=64, primary_key=True)
    client = ForeignKeyField(ConnectorClient, backref="oauth_states", on_delete="CASCADE")
    redirect_uri = TextField()
    code_verifier = EncryptedJSONField(null=True)
    expires_at = DateTimeField()
    tokens = EncryptedJSONField(null=True)
    token_expires_at = DateTimeField(null=True)

    class Meta:
        table_name = "oauth_state"


class PollTally(BaseModel):
    """Polls of one app's clients of one connector in one minute, for the console's last hour.
    Workers count in memory and add their counts every few seconds: never a write per poll."""

    app = ForeignKeyField(App, on_delete="CASCADE", index=False)  # the unique index serves it
    type_id = CharField(max_length=100)
    minute = DateTimeField()
    succeeded = IntegerField(default=0)
    failed = IntegerField(default=0)

    class Meta:
        indexes = ((("app", "type_id", "minute"), True),)


class RateBudget(BaseModel):
    """Provider calls used by an instance in the current one-minute window (host-owned budget)."""

    instance = ForeignKeyField(ConnectorInstance, primary_key=True, on_delete="CASCADE")
    window_start = DateTimeField()
    used = IntegerField(default=0)
