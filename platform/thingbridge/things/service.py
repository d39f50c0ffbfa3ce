"""Finding a subject's things, components and properties: ownership (another app's or
subject's thing is 404). Whole things for reading are ``things.reading``'s."""

from __future__ import annotations

from functools import cache

from peewee import JOIN

from thingbridge.connectors.contract import (
    ActionParameterSpec,
    ActionSpec,
    ComponentSpec,
    PropertySpec,
)
from thingbridge.db import is_postgres
from thingbridge.errors import ApiError, found
from thingbridge.models import APP_PLAIN, Action, App, Component, Property, Thing
from thingbridge.sql import Statement, param
from thingbridge.things.poll_sql import from_row, row_parts


def thing_data(thing_id: str, name: str, manufacturer: str, display_type: str,
               main_component_id: str, status: str, attributes: dict | None = None,
               **extra) -> dict:
    """A thing as events describe it: the API's top-level thing fields, no components."""
    return {"thingId": thing_id, "name": name, "manufacturer": manufacturer,
            "displayType": display_type, "mainComponentId": main_component_id,
            "status": status, **extra}


def subject_things(app, subject: str):
    """The subject's things, oldest first."""
    return Thing.select().where((Thing.app == app) & (Thing.external_subject_id == subject)
                                ).order_by(Thing.created_at, Thing.id)


def read_component(thing: Thing, component_id: str) -> Component:
    """One component with its ``properties`` and ``actions`` attached."""
    components = list(_components(thing, component_id))
    _attach_contents(components)
    return found(components[0] if components else None, "component")


def own_thing(app, subject: str, thing_id: str) -> Thing:
    return found(subject_things(app, subject).where(Thing.id == thing_id).first(), "thing")


def writable_thing(app, subject: str, thing_id: str) -> Thing:
    """One of the app's own things: a connector's thing changes only with its device."""
    thing = own_thing(app, subject, thing_id)
    if thing.connector_client_id is not None:
        raise ApiError(409, "this thing is owned by a connector client and is read-only; "
                            "it changes when the provider's device does", "CONNECTOR_OWNED")
    return thing


def own_component(thing: Thing, component_id: str) -> Component:
    return found(_components(thing, component_id).first(), "component")


def own_property(component: Component, property_id: str) -> Property:
    return found(Property.get_or_none((Property.component == component)
                                      & (Property.property_id == property_id)), "property")


def own_action(component: Component, action_id: str) -> Action:
    return found(Action.get_or_none((Action.component == component)
                                    & (Action.action_id == action_id)), "action")


def _components(thing: Thing, component_id: str):
    return Component.select().where((Component.thing == thing)
                                    & (Component.component_id == component_id))


def _attach_contents(components: list[Component]) -> None:
    _children(components, Property.select().order_by(Property.position, Property.id),
              Property.component, "properties")
    _children(components, Action.select().order_by(Action.position, Action.id),
              Action.component, "actions")


def _children(parents: list, query, foreign_key, attr: str) -> list:
    """Read the rows of ``query`` whose ``foreign_key`` names one of ``parents`` in one query;
    attach each parent's, in the query's order, as ``parent.<attr>`` (and the parent as the
    row's ``foreign_key``, so nothing reads it again). Returns every row read."""
    by_id = {parent.id: parent for parent in parents}
    for parent in parents:
        setattr(parent, attr, [])
    if not by_id:
        return []
    rows = list(query.where(foreign_key.in_(list(by_id))))
    for row in rows:
        parent = by_id[getattr(row, foreign_key.object_id_name)]
        setattr(row, foreign_key.name, parent)
        getattr(parent, attr).append(row)
    return rows


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


_OWNER = App.alias()
_ACTION_TARGET_FIELDS = (Thing._meta.sorted_fields,
                         [getattr(_OWNER, f.name) for f in APP_PLAIN],
                         Action._meta.sorted_fields)


@cache
def _action_target(postgres: bool) -> Statement:
    # Built once per dialect: peewee spent more CPU building this three-join query than
    # PostgreSQL spent running it, on every trigger.
    thing_fields, owner_fields, action_fields = _ACTION_TARGET_FIELDS
    component, action = param("component"), param("action")
    return Statement.build(
        Thing.select(*thing_fields, *owner_fields, Component.id, *action_fields)
        .join_from(Thing, _OWNER, on=(Thing.created_by == _OWNER.id))
        .join_from(Thing, Component, JOIN.LEFT_OUTER,
                   on=(Component.thing == Thing.id) & (Component.component_id == component))
        .join_from(Component, Action, JOIN.LEFT_OUTER,
                   on=(Action.component == Component.id) & (Action.action_id == action))
        .where((Thing.app == param("app")) & (Thing.external_subject_id == param("subject"))
               & (Thing.id == param("thing"))))


def own_action_target(app, subject: str, thing_id: str, component_id: str,
                      action_id: str) -> tuple[Thing, Action]:
    """The subject's thing (its creating app as ``thing.created_by``) and the action of its
    component, in one query; 404 naming the first of thing, component, action that is not
    there."""
    row = _action_target(is_postgres()).run(
        component=component_id, action=action_id, app=app.id, subject=subject,
        thing=thing_id).fetchone()
    found(row, "thing")
    thing_fields, owner_fields, action_fields = _ACTION_TARGET_FIELDS
    thing_part, owner_part, (component_pk,), action = row_parts(row, thing_fields,
                                                                owner_fields, (Component.id,))
    thing = from_row(Thing, thing_fields, thing_part)
    thing.created_by = from_row(App, APP_PLAIN, owner_part)
    # An outer join that found nothing leaves NULLs: no component, or no action on it.
    found(component_pk, "component")
    return thing, from_row(Action, action_fields, found(action if action[0] else None, "action"))
