"""Action requests and the app's action callback registration."""

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from thingbridge.models import ACTION_STATUSES
from thingbridge.schemas.common import ValueString

_VALUE = ValueString()


class ParametersIn(Schema):
    """A flat map of string parameter values (numbers and booleans taken as strings)."""

    class Meta:
        unknown = INCLUDE

    @post_load
    def flat_strings(self, value, **kwargs):
        out = {}
        for key, item in value.items():
            try:
                out[str(key)] = _VALUE.deserialize(item)
            except ValidationError as exc:
                raise ValidationError(f"parameter {key!r} must be a string") from exc
        return out


class ActionRequestOut(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(ACTION_STATUSES))
    deadline = fields.DateTime(required=True, format="iso")
    error = fields.String(allow_none=True)
    thing_id = fields.String(data_key="thingId")
    component_id = fields.String(data_key="componentId")
    action_id = fields.String(data_key="actionId")
    parameters = fields.Dict()


class ActionRequestUpdate(Schema):
    status = fields.String(required=True,
                           validate=validate.OneOf(["COMPLETED", "FAILED", "CANCELED"]))
    error = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class CallbackRegistration(Schema):
    CallbackUrl = fields.String(required=True, validate=validate.Length(max=2000))
    rotateSigningKey = fields.Boolean(load_default=False)

    @pre_load
    def accept_camel_case(self, data, **kwargs):
        if isinstance(data, dict) and "callbackUrl" in data and "CallbackUrl" not in data:
            data = dict(data)
            data["CallbackUrl"] = data.pop("callbackUrl")
        return data


class CallbackRegistered(Schema):
    callbackUrl = fields.String(required=True)
    signingKey = fields.String(metadata={
        "description": "HMAC-SHA256 key for X-Thingbridge-Signature; returned only when created "
                       "(first registration or rotateSigningKey)"})
