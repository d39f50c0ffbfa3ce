"""Connector instances: one provider configuration (app key, OAuth client) per app."""

from marshmallow import Schema, fields

from thingbridge.models import ConnectorDescription
from thingbridge.schemas.common import WithWarnings
from thingbridge.schemas.links import ClientLink, DescriptionLink

MAX_DESCRIPTION_ID = 2**31 - 1  # ConnectorDescription.id is an INTEGER
MAX_TYPE_ID = ConnectorDescription.type_id.max_length


class ConnectorTypeField(fields.Field):
    """A description id (integer, or its digits as a string) or a connector type id (string):
    loaded as an int or a str."""

    default_error_messages = {"invalid": "must be a connector description id or type id"}

    def __init__(self, **kwargs):
        super().__init__(metadata={"anyOf": [
            {"type": "integer", "minimum": 1, "maximum": MAX_DESCRIPTION_ID},
            {"type": "string", "minLength": 1,
             "maxLength": MAX_TYPE_ID}],
            **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.make_error("invalid")
        if isinstance(value, int) and not 1 <= value <= MAX_DESCRIPTION_ID:
            raise self.make_error("invalid")
        if isinstance(value, str) and not 1 <= len(value) <= MAX_TYPE_ID:
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


class InstanceUpdateSchema(Schema):
    configuration = fields.Dict(required=True, metadata={
        "description": "Replaces the whole configuration, validated and checked with the "
                       "provider as on creation; clients stopped because the provider refused "
                       "the old one start again"})


class InstanceCreatedSchema(WithWarnings):
    id = fields.String(required=True)


class InstanceSchema(WithWarnings):
    id = fields.String(required=True)
    clients = fields.List(fields.Nested(ClientLink), required=True)
    connector = fields.Nested(DescriptionLink, required=True, attribute="description")
