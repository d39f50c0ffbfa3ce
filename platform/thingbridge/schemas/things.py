"""Things, components, properties and actions (the connctd thing model).

Create bodies use the contract's lowercase keys (``displaytype``, ``maincomponentid``,
``componenttype``); camelCase is accepted too, by folding every key to lower case on load.
"""

from __future__ import annotations

import math
import re

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from thingbridge.models import PROPERTY_TYPES, THING_STATUSES
from thingbridge.schemas.common import ValueString
from thingbridge.schemas.links import ComponentLink, PropertyLink
from thingbridge.things.service import ISO

ID_PATTERN = re.compile(r"^[a-zA-Z0-9\-_]{1,200}$")
ID_MESSAGE = "must match ^[a-zA-Z0-9-_]{{1,200}}$"


def check_value(kind: str, value: str) -> str | None:
    """Why ``value`` is not valid for a property of type ``kind``, or None if it is."""
    if kind == "NUMBER":
        try:
            if not math.isfinite(float(value)):
                raise ValueError
        except ValueError:
            return f"{value!r} is not a NUMBER"
    elif kind == "BOOLEAN" and value not in ("true", "false"):
        return f"{value!r} is not a BOOLEAN (true or false)"
    return None


class LowerKeys(Schema):
    @pre_load
    def fold_keys(self, data, **kwargs):
        if isinstance(data, dict):
            return {str(k).lower(): v for k, v in data.items()}
        return data


Id = lambda: fields.String(required=True, validate=validate.Regexp(ID_PATTERN, error=ID_MESSAGE))  # noqa: E731


class ParameterIn(LowerKeys):
    name = Id()
    type = fields.String(load_default="STRING", validate=validate.OneOf(PROPERTY_TYPES))
    required = fields.Boolean(load_default=False)


class ActionIn(LowerKeys):
    id = Id()
    parameters = fields.List(fields.Nested(ParameterIn), load_default=list)


class PropertyIn(LowerKeys):
    id = Id()
    name = fields.String(load_default="")
    value = ValueString(load_default="")
    unit = fields.String(load_default="")
    type = fields.String(required=True, validate=validate.OneOf(PROPERTY_TYPES))
    propertytype = fields.String(load_default="")

    @validates_schema
    def value_fits_type(self, data, **kwargs):
        if data.get("value") and (problem := check_value(data["type"], data["value"])):
            raise ValidationError(problem, "value")


def _unique_ids(items, what: str):
    seen = set()
    for item in items:
        key = item["id"].lower()
        if key in seen:
            raise ValidationError(f"duplicate {what} id {item['id']!r} (ids are case-insensitive)")
        seen.add(key)


class ComponentIn(LowerKeys):
    id = Id()
    name = fields.String(load_default="")
    componenttype = fields.String(load_default="")
    capabilities = fields.List(fields.String(), load_default=list)
    properties = fields.List(fields.Nested(PropertyIn), load_default=list)
    actions = fields.List(fields.Nested(ActionIn), load_default=list)

    @validates_schema
    def has_content(self, data, **kwargs):
        if not data.get("properties") and not data.get("actions"):
            raise ValidationError(f"component {data.get('id')!r} needs a property or an action")
        _unique_ids(data.get("properties", []), "property")
        _unique_ids(data.get("actions", []), "action")


class AttributesField(fields.Field):
    """``[{"name", "value"}]`` (the contract) or a plain object; stored as a mapping."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return dict(value)
        if isinstance(value, list) and all(
                isinstance(a, dict) and isinstance(a.get("name"), str)
                and isinstance(a.get("value", ""), str) for a in value):
            return {a["name"]: a.get("value", "") for a in value}
        raise ValidationError('attributes must be [{"name": str, "value": str}]')

    def _serialize(self, value, attr, obj, **kwargs):
        return [{"name": k, "value": v} for k, v in (value or {}).items()]


class ThingIn(LowerKeys):
    name = fields.String(required=True, validate=validate.Length(max=255))
    manufacturer = fields.String(load_default="", validate=validate.Length(max=255))
    displaytype = fields.String(load_default="", validate=validate.Length(max=255))
    maincomponentid = fields.String(required=True)
    status = fields.String(load_default="AVAILABLE", validate=validate.OneOf(THING_STATUSES))
    attributes = AttributesField(load_default=dict)
    components = fields.List(fields.Nested(ComponentIn), required=True,
                             validate=validate.Length(min=1, error="at least one component"))

    @validates_schema
    def main_component_exists(self, data, **kwargs):
        components = data.get("components") or []
        _unique_ids(components, "component")
        if components and data.get("maincomponentid") not in {c["id"] for c in components}:
            raise ValidationError("maincomponentid must name one of the components",
                                  "maincomponentid")


class ThingCreatedSchema(Schema):
    id = fields.String(required=True, data_key="Id")


class StatusIn(Schema):
    status = fields.String(required=True, validate=validate.OneOf(THING_STATUSES))


class ValueIn(Schema):
    value = ValueString(required=True)


class PropertyOut(Schema):
    property_id = fields.String(data_key="id")
    name = fields.String()
    value = fields.String()
    unit = fields.String()
    type = fields.String()
    last_update = fields.Function(
        lambda prop: prop.last_update.strftime(ISO), data_key="lastUpdate", metadata={
            "type": "string", "format": "date-time", "example": "2026-11-23T09:30:00.000000Z"})
    property_type = fields.String(data_key="propertyType")


class ActionOut(Schema):
    action_id = fields.String(data_key="id")
    parameters = fields.List(fields.Dict())


class ComponentOut(Schema):
    component_id = fields.String(data_key="id")
    name = fields.String()
    component_type = fields.String(data_key="componentType")
    capabilities = fields.List(fields.String())
    property_links = fields.List(fields.Nested(PropertyLink), attribute="properties",
                                 data_key="propertyLinks", dump_only=True)
    actions = fields.List(fields.Nested(ActionOut))


class ExpandedComponentOut(ComponentOut):
    properties = fields.List(fields.Nested(PropertyOut))


class ThingOut(Schema):
    id = fields.String()
    name = fields.String()
    manufacturer = fields.String()
    status = fields.String()
    display_type = fields.String(data_key="displayType")
    main_component_id = fields.String(data_key="mainComponentId")
    component_links = fields.List(fields.Nested(ComponentLink), attribute="components",
                                  data_key="componentLinks")
    attributes = AttributesField(metadata={"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}})
    components = fields.List(fields.Nested(ExpandedComponentOut),
                             attribute="expanded_components",
                             metadata={"description": "?expand=components only"})


class ExpandArgs(Schema):
    expand = fields.String(validate=validate.OneOf(["components"]))
