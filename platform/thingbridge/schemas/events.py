"""The event envelope and the pull feed's query and page."""

from marshmallow import Schema, fields, validate

from thingbridge.outbox.events import EVENT_TYPES, MAX_ID, envelope
from thingbridge.schemas.common import QueryInteger


class EventOut(Schema):
    id = fields.Integer(required=True, metadata={
        "description": "Increases per app; the cursor for ?after= and the dedupe key"})
    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    occurred_at = fields.String(required=True, metadata={"example": "2026-11-23T09:30:00.000000Z"})
    app = fields.String(required=True, metadata={"description": "The app's id"})
    external_subject_id = fields.String(allow_none=True)
    data = fields.Dict(required=True, metadata={
        "description": "The changed resource as its API shows it (thing.property_changed: "
                       "thingId, componentId, propertyId, oldValue, newValue, lastUpdate)"})


class Envelope(fields.Nested):
    """An event row as its envelope: documented as EventOut, written by the outbox's own
    ``envelope`` so the feed shows exactly what webhooks and brokers send."""

    def __init__(self, **kwargs):
        super().__init__(EventOut, **kwargs)

    def _serialize(self, nested_obj, attr, obj, **kwargs):
        return envelope(nested_obj)


class EventsQuery(Schema):
    after = QueryInteger(load_default=0, validate=validate.Range(min=0, max=MAX_ID), metadata={
        "description": "Return events with id greater than this (the last id you processed)"})
    limit = QueryInteger(load_default=100, validate=validate.Range(min=1, max=1000))


class EventPage(Schema):
    events = fields.List(Envelope(), required=True, attribute="items")
    cursor = fields.Integer(required=True, metadata={
        "description": "Pass as ?after= for the next page (unchanged when there is nothing new)"})
    has_more = fields.Boolean(required=True)
