"""Connector descriptions: what each installed connector is and how to configure it."""

from marshmallow import Schema, fields


class DescriptionSchema(Schema):
    id = fields.Integer(required=True)
    type_id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String()
    logo = fields.String()
    sample_instance_configuration = fields.Dict()
    sample_client_configuration = fields.Dict()
