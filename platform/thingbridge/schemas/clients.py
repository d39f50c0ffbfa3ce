"""Connector clients: one per end user (external subject) and connector type."""

from marshmallow import Schema, fields, validate

from thingbridge.models import CLIENT_STATUSES
from thingbridge.schemas.common import Timestamp, WithWarnings
from thingbridge.schemas.instances import ConnectorTypeField
from thingbridge.schemas.links import DescriptionLink, InstanceLink

CONFIGURATION_TEXT = ("Validated by the connector's client schema; keys it does not know are "
                      "ignored and named in `warnings`, unless the connector refuses them")


class ClientCreateSchema(Schema):
    connector_type_id = ConnectorTypeField(required=True)
    configuration = fields.Dict(load_default=dict, metadata={"description": CONFIGURATION_TEXT})


class ClientUpdateSchema(Schema):
    configuration = fields.Dict(required=True, metadata={
        "description": CONFIGURATION_TEXT + ". Replaces the whole configuration and puts the "
                       "client back to STARTING"})


class ClientConfirmSchema(Schema):
    confirmation = fields.String(required=True, validate=validate.Length(min=1, max=200),
                                 metadata={"description": "The code the end user's browser "
                                                          "brought back to origin_callback_uri"})


class ClientCreatedSchema(WithWarnings):
    client_id = fields.String(required=True)
    href = fields.String(metadata={"description": "Provider consent URL (OAuth connectors, 303)"})


class MappingSchema(Schema):
    connector_thing_id = fields.String(required=True)
    thing_id = fields.String(required=True)


class ClientSchema(WithWarnings):
    id = fields.String(required=True)
    instance = fields.Nested(InstanceLink, required=True)
    connector = fields.Nested(DescriptionLink, required=True, attribute="description")
    mappings = fields.List(fields.Nested(MappingSchema), required=True)
    status = fields.String(required=True, validate=validate.OneOf(CLIENT_STATUSES))
    status_reason = fields.String(allow_none=True, metadata={
        "description": "Why the client is in its status (ERROR: what the app or end user must "
                       "fix; STARTED: the last transient failure, if any)"})
    status_since = Timestamp(required=True, metadata={
        "description": "When the client entered its status (UTC)"})
    last_polled_at = Timestamp(allow_none=True, metadata={
        "description": "When the provider was last asked, with any outcome (UTC)"})
    next_poll_at = Timestamp(allow_none=True, metadata={
        "description": "When the next poll is due (UTC); null while the client waits for the "
                       "app or the end user"})
