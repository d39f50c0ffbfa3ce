"""Reading things as the API shows them, in a constant number of queries however many things."""

from __future__ import annotations

from collections import defaultdict

from thingbridge.connectors.contract import (
    ActionParameterSpec,
    ActionSpec,
    ComponentSpec,
    PropertySpec,
)
from thingbridge.models import Action, Component, Property, Thing

ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def thing_data(thing_id: str, name: str, manufacturer: str, display_type: str,
               main_component_id: str, status: str, attributes: dict | None = None,
               **extra) -> dict:
    """A thing as events describe it: the API's top-level thing fields, no components."""
    return {"thingId": thing_id, "name": name, "manufacturer": manufacturer,
            "displayType": display_type, "mainComponentId": main_component_id,
            "status": status, **extra}


def thing_path(thing_id: str) -> str:
    return f"/api/v1/things/{thing_id}"


def component_path(thing_id: str, component_id: str) -> str:
    return f"{thing_path(thing_id)}/components/{component_id}"


def property_out(prop: Property) -> dict:
    return {"id": prop.property_id, "name": prop.name, "value": prop.value, "unit": prop.unit,
            "type": prop.type, "lastUpdate": prop.last_update.strftime(ISO),
            "propertyType": prop.property_type}


def action_out(action: Action) -> dict:
    return {"id": action.action_id, "parameters": action.parameters}


def component_out(href, thing_id: str, component: Component, properties, actions,
                  expand: bool) -> dict:
    body = {"id": component.component_id, "name": component.name,
            "componentType": component.component_type, "capabilities": component.capabilities,
            "propertyLinks": [
                {"href": href(f"{component_path(thing_id, component.component_id)}"
                              f"/properties/{p.property_id}")} for p in properties],
            "actions": [action_out(a) for a in actions]}
    if expand:
        body["properties"] = [property_out(p) for p in properties]
    return body


def things_out(href, things: list[Thing], expand: bool) -> list[dict]:
    """Serialize things; with ``expand`` their components, properties and actions inline."""
    ids = [t.id for t in things]
    components = defaultdict(list)
    properties = defaultdict(list)
    actions = defaultdict(list)
    if ids:
        for c in Component.select().where(Component.thing.in_(ids)).order_by(Component.position):
            components[c.thing_id].append(c)
    if expand and components:
        component_ids = [c.id for cs in components.values() for c in cs]
        for p in Property.select().where(Property.component.in_(component_ids)).order_by(
                Property.position, Property.id):
            properties[p.component_id].append(p)
        for a in Action.select().where(Action.component.in_(component_ids)).order_by(
                Action.position, Action.id):
            actions[a.component_id].append(a)
    out = []
    for thing in things:
        body = {"id": thing.id, "name": thing.name, "manufacturer": thing.manufacturer,
                "status": thing.status, "displayType": thing.display_type,
                "mainComponentId": thing.main_component_id,
                "componentLinks": [{"href": href(component_path(thing.id, c.component_id))}
                                   for c in components[thing.id]],
                "attributes": [{"name": k, "value": v} for k, v in thing.attributes.items()]}
        if expand:
            body["components"] = [component_out(href, thing.id, c, properties[c.id],
                                                actions[c.id], True)
                                  for c in components[thing.id]]
        out.append(body)
    return out


def component_spec(data: dict) -> ComponentSpec:
    """A validated create-body component as the same spec connectors produce."""
    return ComponentSpec(
        id=data["id"], name=data["name"], component_type=data["componenttype"],
        capabilities=data["capabilities"],
        properties=[PropertySpec(id=p["id"], value=p["value"], type=p["type"], name=p["name"],
                                 unit=p["unit"], property_type=p["propertytype"])
                    for p in data["properties"]],
        actions=[ActionSpec(id=a["id"], parameters=[
            ActionParameterSpec(name=p["name"], type=p["type"], required=p["required"])
            for p in a["parameters"]]) for a in data["actions"]])
