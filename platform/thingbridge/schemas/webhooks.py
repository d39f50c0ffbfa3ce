"""Webhook endpoints, their deliveries and attempts, rotation and replay."""

from marshmallow import Schema, ValidationError, fields, post_dump, validate, validates

from thingbridge.models import DELIVERY_STATUSES
from thingbridge.outbox.events import MAX_ID, pattern_problem

TYPES_DOC = ("Event types to receive: exact (`thing.created`), a family (`thing.*`) or `*`; "
             "default all")


class _TypesMixin:
    @validates("event_types")
    def known_types(self, value, **kwargs):
        problems = [p for p in map(pattern_problem, value) if p]
        if problems:
            raise ValidationError("; ".join(problems))


class WebhookIn(_TypesMixin, Schema):
    url = fields.String(required=True, validate=validate.Length(max=2000), metadata={
        "description": "https (http only to localhost in development)",
        "example": "https://example.com/thingbridge/events"})
    event_types = fields.List(fields.String(), load_default=lambda: ["*"],
                              validate=validate.Length(min=1, max=50),
                              metadata={"description": TYPES_DOC})
    description = fields.String(load_default="", validate=validate.Length(max=500))


class WebhookPatch(_TypesMixin, Schema):
    url = fields.String(validate=validate.Length(max=2000))
    event_types = fields.List(fields.String(), validate=validate.Length(min=1, max=50),
                              metadata={"description": TYPES_DOC})
    description = fields.String(validate=validate.Length(max=500))


class WebhookOut(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(), required=True)
    description = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    cursor = fields.Integer(required=True, metadata={
        "description": "Last event id turned into deliveries for this endpoint"})
    secret = fields.String(metadata={
        "description": "Signing secret (`whsec_...`): only in the create and rotate answers"})


class SecretRotated(Schema):
    secret = fields.String(required=True, metadata={"description": "The new signing secret"})
    previous_valid_until = fields.DateTime(allow_none=True, metadata={
        "description": "Until when deliveries are also signed with the previous secret"})


class AttemptOut(Schema):
    created_at = fields.DateTime(required=True, data_key="at")
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer(required=True)


class DeliveryOut(Schema):
    id = fields.Integer(required=True)
    seq = fields.Integer(required=True, data_key="event_id")
    event_type = fields.String(required=True, attribute="event.type")
    external_subject_id = fields.String(allow_none=True, attribute="event.external_subject_id")
    status = fields.String(required=True, validate=validate.OneOf(DELIVERY_STATUSES), metadata={
        "description": "PENDING (queued or retrying), DELIVERED (2xx), DEAD (gave up)"})
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(allow_none=True, metadata={
        "description": "When a PENDING delivery is tried next"})
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True)
    attempt_log = fields.List(fields.Nested(AttemptOut), required=True, attribute="attempt_rows")

    @post_dump(pass_original=True)
    def due_only_while_pending(self, data, delivery, **kwargs):
        if delivery.status != "PENDING":
            data["next_attempt_at"] = None
        return data


class DeliveriesQuery(Schema):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID),
                           metadata={"description": "Delivery id cursor"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class DeliveryPage(Schema):
    deliveries = fields.List(fields.Nested(DeliveryOut), required=True, attribute="items")
    cursor = fields.Integer(required=True)
    has_more = fields.Boolean(required=True)


class ReplayIn(Schema):
    after = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_ID), metadata={
        "description": "Deliver again every (matching) event with an id greater than this"})


class ReplayOut(Schema):
    cursor = fields.Integer(required=True)
