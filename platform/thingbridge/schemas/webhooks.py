"""Webhook endpoints, their deliveries and attempts, rotation and replay."""

from marshmallow import Schema, fields, post_dump, validate

from thingbridge.models import DELIVERY_STATUSES, WebhookEndpoint
from thingbridge.outbox.events import EVENT_PATTERNS, MAX_ID
from thingbridge.schemas.common import QueryInteger, Timestamp, fits

TYPES_DOC = ("Event types to receive: exact (`thing.created`), a family (`thing.*`) or `*`; "
             "default all")
MAX_URL = 2000


def event_types(**kwargs) -> fields.List:
    pattern = fields.String(validate=validate.OneOf(
        EVENT_PATTERNS, error="unknown event type {input!r}"))
    return fields.List(pattern, validate=validate.Length(min=1, max=len(EVENT_PATTERNS)),
                       metadata={"description": TYPES_DOC}, **kwargs)


class WebhookIn(Schema):
    url = fields.String(required=True, validate=validate.Length(max=MAX_URL), metadata={
        "description": "https (http only to localhost in development)",
        "example": "https://example.com/thingbridge/events"})
    event_types = event_types(load_default=lambda: ["*"])
    description = fields.String(load_default="", validate=fits(WebhookEndpoint.description))


class WebhookPatch(Schema):
    url = fields.String(validate=validate.Length(max=MAX_URL))
    event_types = event_types()
    description = fields.String(validate=fits(WebhookEndpoint.description))


class WebhookOut(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(), required=True)
    description = fields.String(required=True)
    created_at = Timestamp(required=True)
    cursor = fields.Integer(required=True, metadata={
        "description": "Last event id turned into deliveries for this endpoint"})
    secret = fields.String(metadata={
        "description": "Signing secret (`whsec_...`): only in the create and rotate answers"})
    last_error = fields.String(allow_none=True, metadata={
        "description": "The error of the latest failed delivery attempt, null once one "
                       "succeeds (a receiver down, or a signing secret the platform cannot "
                       "read)"})
    last_error_at = Timestamp(allow_none=True, metadata={
        "description": "When that attempt failed"})


class SecretRotated(Schema):
    secret = fields.String(required=True, metadata={"description": "The new signing secret"})
    previous_valid_until = Timestamp(allow_none=True, metadata={
        "description": "Until when deliveries are also signed with the previous secret"})


class AttemptOut(Schema):
    created_at = Timestamp(required=True, data_key="at")
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
    next_attempt_at = Timestamp(allow_none=True, metadata={
        "description": "When a PENDING delivery is tried next"})
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = Timestamp(required=True)
    finished_at = Timestamp(allow_none=True)
    attempt_log = fields.List(fields.Nested(AttemptOut), required=True, attribute="attempt_rows")

    @post_dump(pass_original=True)
    def due_only_while_pending(self, data, delivery, **kwargs):
        if delivery.status != "PENDING":
            data["next_attempt_at"] = None
        return data


class DeliveriesQuery(Schema):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    after = QueryInteger(load_default=0, validate=validate.Range(min=0, max=MAX_ID),
                           metadata={"description": "Delivery id cursor"})
    limit = QueryInteger(load_default=50, validate=validate.Range(min=1, max=500))


class DeliveryPage(Schema):
    deliveries = fields.List(fields.Nested(DeliveryOut), required=True, attribute="items")
    cursor = fields.Integer(required=True)
    has_more = fields.Boolean(required=True)


class ReplayIn(Schema):
    # strict: 1.5 is refused, not read as 1.
    after = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_ID),
                           metadata={"description": "Deliver again every (matching) event with "
                                                    "an id greater than this"})


class ReplayOut(Schema):
    cursor = fields.Integer(required=True)
