"""Connector clients: one per end user (external subject) and connector type."""

from marshmallow import Schema, fields, validate

from thingbridge.models import CLIENT_STATUSES
from thingbridge.schemas.instances import ConnectorTypeField
from thingbridge.schemas.links import DescriptionLink, InstanceLink


class ClientCreateSchema(Schema):
    connector_type_id = ConnectorTypeField(required=True)
    configuration = fields.Dict(
        load_default=dict, metadata={"description": "Validated by the connector's client schema"})


class ClientCreatedSchema(Schema):
    client_id = fields.String(required=True)
    href = fields.String(metadata={"description": "Provider consent URL (OAuth connectors, 303)"})


class MappingSchema(Schema):
    connector_thing_id = fields.String(required=True)
    thing_id = fields.String(required=True)


class ClientSchema(Schema):
    id = fields.String(required=True)
    instance = fields.Nested(InstanceLink, required=True)
    connector = fields.Nested(DescriptionLink, required=True, attribute="description")
    mappings = fields.List(fields.Nested(MappingSchema), required=True)
    status = fields.String(required=True, validate=validate.OneOf(CLIENT_STATUSES))
    status_reason = fields.String(allow_none=True)
