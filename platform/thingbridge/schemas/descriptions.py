"""Connector descriptions: what each installed connector is and how to configure it."""

from marshmallow import Schema, fields


class DescriptionSchema(Schema):
    id = fields.Integer(required=True)
    type_id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    logo = fields.String(required=True)
    sample_instance_configuration = fields.Dict(required=True)
    sample_client_configuration = fields.Dict(required=True)
