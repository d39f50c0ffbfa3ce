"""Things, components, properties and actions (the connctd thing model).

Create bodies use the contract's lowercase keys (``displaytype``, ``maincomponentid``,
``componenttype``); camelCase is accepted too, by folding every key to lower case on load.
"""

from __future__ import annotations

import math
import re

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from thingbridge.models import PROPERTY_TYPES, THING_STATUSES, Component, Property, Thing
from thingbridge.schemas.common import Flag, FullMatch, ValueString, fits, iso
from thingbridge.schemas.links import ComponentLink, PropertyLink

ID_PATTERN = re.compile(r"^[a-zA-Z0-9\-_]{1,200}$")
ID_MESSAGE = "must match ^[a-zA-Z0-9-_]{{1,200}}$"
# How many of each a thing may have: bounds on the work one request makes.
MAX_COMPONENTS, MAX_PROPERTIES, MAX_ACTIONS, MAX_PARAMETERS, MAX_ITEMS = 50, 100, 50, 20, 50
ATTRIBUTE_TEXT = 255


# A NUMBER in the notation every reader parses: ASCII digits, an optional sign, fraction and
# exponent. Python's float() also takes "1_000", " 1", full-width digits and "inf".
NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def check_value(kind: str, value: str) -> str | None:
    """Why ``value`` is not valid for a property of type ``kind``, or None if it is."""
    if kind == "NUMBER" and not (NUMBER.fullmatch(value) and math.isfinite(float(value))):
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


Id = lambda: fields.String(required=True, validate=FullMatch(ID_PATTERN, error=ID_MESSAGE))  # noqa: E731


def bounded_list(item, most: int, **kwargs) -> fields.List:
    return fields.List(item, validate=validate.Length(max=most), **kwargs)


class ParameterIn(LowerKeys):
    name = Id()
    type = fields.String(load_default="STRING", validate=validate.OneOf(PROPERTY_TYPES))
    required = Flag(load_default=False)


class ActionIn(LowerKeys):
    id = Id()
    parameters = bounded_list(fields.Nested(ParameterIn), MAX_PARAMETERS, load_default=list)

    @validates_schema
    def unique_parameters(self, data, **kwargs):
        names = [parameter["name"] for parameter in data.get("parameters", [])]
        if len(set(names)) < len(names):
            raise ValidationError(f"action {data.get('id')!r} names a parameter twice",
                                  "parameters")


class PropertyIn(LowerKeys):
    id = Id()
    name = fields.String(load_default="", validate=fits(Property.name))
    value = ValueString(load_default="")
    unit = fields.String(load_default="", validate=fits(Property.unit))
    type = fields.String(required=True, validate=validate.OneOf(PROPERTY_TYPES))
    propertytype = fields.String(load_default="", validate=fits(Property.property_type))

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
    name = fields.String(load_default="", validate=fits(Component.name))
    componenttype = fields.String(load_default="", validate=fits(Component.component_type))
    capabilities = bounded_list(fields.String(validate=validate.Length(max=ATTRIBUTE_TEXT)),
                                MAX_ITEMS, load_default=list)
    properties = bounded_list(fields.Nested(PropertyIn), MAX_PROPERTIES, load_default=list)
    actions = bounded_list(fields.Nested(ActionIn), MAX_ACTIONS, load_default=list)

    @validates_schema
    def has_content(self, data, **kwargs):
        if not data.get("properties") and not data.get("actions"):
            raise ValidationError(f"component {data.get('id')!r} needs a property or an action")
        _unique_ids(data.get("properties", []), "property")
        _unique_ids(data.get("actions", []), "action")


_TEXT = {"type": "string", "maxLength": ATTRIBUTE_TEXT}
ATTRIBUTES_DOC = {"type": "array", "maxItems": MAX_ITEMS, "items": {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": _TEXT, "value": _TEXT}}}


class AttributesField(fields.Field):
    """``[{"name", "value"}]`` (the contract) or a plain object; stored as a mapping."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list) and all(
                isinstance(a, dict) and isinstance(a.get("name"), str)
                and isinstance(a.get("value", ""), str) and set(a) <= {"name", "value"}
                for a in value):
            value = {a["name"]: a.get("value", "") for a in value}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValidationError('attributes must be [{"name": str, "value": str}]')
        if len(value) > MAX_ITEMS or any(len(text) > ATTRIBUTE_TEXT
                                         for item in value.items() for text in item):
            raise ValidationError(f"at most {MAX_ITEMS} attributes, names and values of at "
                                  f"most {ATTRIBUTE_TEXT} characters")
        return dict(value)

    def _serialize(self, value, attr, obj, **kwargs):
        return [{"name": k, "value": v} for k, v in (value or {}).items()]


class ThingIn(LowerKeys):
    name = fields.String(required=True, validate=fits(Thing.name))
    manufacturer = fields.String(load_default="", validate=fits(Thing.manufacturer))
    displaytype = fields.String(load_default="", validate=fits(Thing.display_type))
    maincomponentid = Id()
    status = fields.String(load_default="AVAILABLE", validate=validate.OneOf(THING_STATUSES))
    attributes = AttributesField(load_default=dict, metadata={"anyOf": [ATTRIBUTES_DOC, {
        "type": "object", "maxProperties": MAX_ITEMS, "additionalProperties": _TEXT}],
        "description": '`[{"name", "value"}]`, or a plain object of strings'})
    components = fields.List(fields.Nested(ComponentIn), required=True, validate=validate.Length(
        min=1, max=MAX_COMPONENTS, error=f"1 to {MAX_COMPONENTS} components"))

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
    property_id = fields.String(required=True, data_key="id")
    name = fields.String(required=True)
    value = fields.String(required=True)
    unit = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(PROPERTY_TYPES))
    last_update = fields.Function(
        lambda prop: iso(prop.last_update), data_key="lastUpdate", required=True,
        metadata={"type": "string", "format": "date-time",
                  "example": "2026-11-23T09:30:00.000000Z"})
    property_type = fields.String(required=True, data_key="propertyType")


class ParameterOut(Schema):
    name = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(PROPERTY_TYPES))
    required = fields.Boolean(required=True)


class ActionOut(Schema):
    action_id = fields.String(required=True, data_key="id")
    parameters = fields.List(fields.Nested(ParameterOut), required=True)


class ComponentOut(Schema):
    component_id = fields.String(required=True, data_key="id")
    name = fields.String(required=True)
    component_type = fields.String(required=True, data_key="componentType")
    capabilities = fields.List(fields.String(), required=True)
    property_links = fields.List(fields.Nested(PropertyLink), attribute="properties",
                                 data_key="propertyLinks", dump_only=True, required=True)
    actions = fields.List(fields.Nested(ActionOut), required=True)


class ExpandedComponentOut(ComponentOut):
    properties = fields.List(fields.Nested(PropertyOut), required=True)


class ThingOut(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    manufacturer = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(THING_STATUSES))
    display_type = fields.String(required=True, data_key="displayType")
    main_component_id = fields.String(required=True, data_key="mainComponentId")
    component_links = fields.List(fields.Nested(ComponentLink), attribute="components",
                                  data_key="componentLinks", required=True)
    attributes = AttributesField(required=True, metadata=ATTRIBUTES_DOC)
    components = fields.List(fields.Nested(ExpandedComponentOut),
                             attribute="expanded_components",
                             metadata={"description": "?expand=components only"})


class ExpandArgs(Schema):
    expand = fields.String(validate=validate.OneOf(["components"]))
