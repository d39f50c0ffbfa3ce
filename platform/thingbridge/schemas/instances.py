"""Connector instances: one provider configuration (app key, OAuth client) per app."""

from marshmallow import Schema, fields

from thingbridge.schemas.common import WithWarnings
from thingbridge.schemas.links import ClientLink, DescriptionLink


class ConnectorTypeField(fields.Field):
    """A description id (integer) or a connector type id (string)."""

    default_error_messages = {"invalid": "must be a connector description id or type id"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
            raise self.make_error("invalid")
        return value


class InstanceCreateSchema(Schema):
    connector_type_id = ConnectorTypeField(
        required=True,
        metadata={"description": "Description id or type id", "example": "openweathermap"})
    configuration = fields.Dict(required=True, metadata={
        "description": "Validated by the connector's instance schema; keys it does not know "
                       "are ignored and named in `warnings`, unless the connector refuses "
                       "them"})


class InstanceCreatedSchema(WithWarnings):
    id = fields.String(required=True)


class InstanceSchema(Schema):
    id = fields.String(required=True)
    clients = fields.List(fields.Nested(ClientLink), required=True)
    connector = fields.Nested(DescriptionLink, required=True, attribute="description")
