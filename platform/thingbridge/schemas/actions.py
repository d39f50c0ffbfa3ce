"""Action requests, the signed connector-action body, and the app's callback registration."""

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from thingbridge.models import ACTION_STATUSES, ActionRequest, Thing
from thingbridge.models.actions import RESERVED
from thingbridge.schemas.common import VALUE_DOC, Flag, FullMatch, Timestamp, ValueString, fits
from thingbridge.schemas.things import ID_MESSAGE, ID_PATTERN, MAX_PARAMETERS

_VALUE = ValueString()
PARAMETERS_DOC = {"type": "object", "maxProperties": MAX_PARAMETERS,
                  "additionalProperties": VALUE_DOC,
                  "description": "Parameter values by name (numbers and booleans are taken as "
                                 "strings); checked against the action's declaration"}


def flat_strings(value) -> dict:
    """A parameters object as ``{name: string}``; ValidationError naming what is wrong."""
    if not isinstance(value, dict):
        raise ValidationError("parameters must be an object")
    if len(value) > MAX_PARAMETERS:
        raise ValidationError(f"at most {MAX_PARAMETERS} parameters")
    out = {}
    for key, item in value.items():
        try:
            out[str(key)] = _VALUE.deserialize(item)
        except ValidationError as exc:
            raise ValidationError(f"parameter {str(key)[:50]!r} {exc.messages[0]}") from exc
    return out


class ParametersIn(Schema):
    """A flat map of string parameter values (numbers and booleans taken as strings)."""

    class Meta:
        unknown = INCLUDE

    @post_load
    def flat(self, value, **kwargs):
        return flat_strings(value)


class ParametersField(fields.Field):
    """A nested parameters object, as ``ParametersIn`` reads a whole body."""

    def __init__(self, **kwargs):
        super().__init__(metadata=PARAMETERS_DOC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return flat_strings(value)


def _not_reserved(value: str) -> None:
    if value.startswith(RESERVED):
        raise ValidationError(f"an id may not begin with {RESERVED!r} (reserved)")


class ConnectorActionIn(Schema):
    """What the signed connector-actions endpoint is sent: an action delivery's body."""

    class Meta:
        unknown = INCLUDE  # a delivery's other fields (status, ...) are ignored

    id = fields.String(required=True, validate=[
        validate.Length(min=1, max=ActionRequest.external_id.max_length), _not_reserved],
        metadata={"description": "The caller's request id: a repeated id is answered with its "
                                 "first result and not performed again (ids beginning with "
                                 f"`{RESERVED}` are reserved for action triggers' keys)"})
    thingId = fields.String(required=True, validate=fits(Thing.id))
    componentId = fields.String(required=True,
                                validate=FullMatch(ID_PATTERN, error=ID_MESSAGE))
    actionId = fields.String(required=True, validate=FullMatch(ID_PATTERN, error=ID_MESSAGE))
    parameters = ParametersField(load_default=dict)


class ActionRequestOut(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(ACTION_STATUSES))
    deadline = Timestamp(required=True)
    error = fields.String(required=True, allow_none=True)
    thing_id = fields.String(required=True, data_key="thingId")
    component_id = fields.String(required=True, data_key="componentId")
    action_id = fields.String(required=True, data_key="actionId")
    parameters = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class ActionRequestUpdate(Schema):
    status = fields.String(required=True,
                           validate=validate.OneOf(["COMPLETED", "FAILED", "CANCELED"]))
    error = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class CallbackRegistration(Schema):
    CallbackUrl = fields.String(required=True, validate=validate.Length(max=2000))
    rotateSigningKey = Flag(load_default=False)

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

