"""Action requests: one per triggered action, PENDING until a terminal state, moved once."""

from __future__ import annotations

from peewee import SQL, CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from thingbridge.db import utcnow
from thingbridge.models.apps import App
from thingbridge.models.base import BaseModel, JSONField, UUIDKey
from thingbridge.models.things import Thing

ACTION_STATUSES = ("PENDING", "COMPLETED", "FAILED", "CANCELED")
# The external ids that hold an action trigger's Idempotency-Key (actions/idempotency.py) begin
# so; the signed connector-actions endpoint, whose callers choose the others, refuses them.
RESERVED = "idempotency-key:"


class ActionRequest(BaseModel):
    id = UUIDKey()
    # The (app, created_at) index serves lookups by app: an app's newest requests without
    # reading its older ones.
    app = ForeignKeyField(App, on_delete="CASCADE", index=False)
    external_subject_id = CharField(max_length=255)
    thing = ForeignKeyField(Thing, backref="action_requests", on_delete="CASCADE")
    component_id = CharField(max_length=200)
    action_id = CharField(max_length=200)
    parameters = JSONField(default=dict)
    status = CharField(max_length=16, default="PENDING", index=True)
    error = TextField(null=True)
    deadline = DateTimeField()
    attempts = IntegerField(default=0)
    updated_at = DateTimeField(default=utcnow)
    # When a worker should next try to deliver it (None: nothing to send, e.g. the app
    # answered 202, or the request was performed by the connector-actions endpoint), and the
    # delivery task that holds it meanwhile.
    next_attempt_at = DateTimeField(null=True)
    lease_token = CharField(max_length=36, null=True)
    leased_until = DateTimeField(null=True)
    # Until when a task is sending it (an app's deliveries in flight are bounded).
    delivering_until = DateTimeField(null=True)
    # The caller's request id, for requests made through the signed connector-actions
    # endpoint: one request per id, so a replayed delivery is not performed twice.
    external_id = CharField(max_length=200, null=True)

    class Meta:
        indexes = ((("app", "external_id"), True), (("app", "created_at"), False))


# The deliveries in flight per app, counted by every take: only rows a task is sending, so the
# count never reads an app's finished requests.
ActionRequest.add_index(ActionRequest.index(ActionRequest.app, ActionRequest.delivering_until,
                                            where=ActionRequest.delivering_until.is_null(False)))


def pending(table=ActionRequest):
    """``table`` (the model or an alias of it) is PENDING, as a literal, not a parameter: a
    planner uses the partial index of due requests for a statement whose condition it can
    prove implies the index's, and a generic plan knows no parameter's value."""
    return table.status == SQL("'PENDING'")


# The due requests, found by the dispatcher app by app: only PENDING rows, so a finished
# request (which keeps the time it was due) leaves the index, and finding the due ones never
# walks an app's history.
ActionRequest.add_index(ActionRequest.index(ActionRequest.app, ActionRequest.next_attempt_at,
                                            where=pending()))
