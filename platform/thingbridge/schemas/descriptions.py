"""Connector descriptions: what each installed connector is and how to configure it."""

from marshmallow import Schema, fields


def _create_body(description, configuration: dict) -> dict:
    """A whole create request, as the connctd descriptions show their samples."""
    body = {"connector_type_id": description.type_id}
    return {**body, "configuration": configuration} if configuration else body


class DescriptionSchema(Schema):
    id = fields.Integer(required=True)
    type_id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    logo = fields.String(required=True)
    sample_instance_configuration = fields.Function(
        lambda d: _create_body(d, d.sample_instance_configuration), required=True,
        metadata={"type": "object", "description": "A whole POST /connectors/instances body"})
    sample_client_configuration = fields.Function(
        lambda d: _create_body(d, d.sample_client_configuration), required=True,
        metadata={"type": "object", "description": "A whole POST /connectors/clients body"})
