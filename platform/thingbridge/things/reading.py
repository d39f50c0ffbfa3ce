"""Whole things as the API and the console show them, read with statements built once
(``thingbridge.sql``) into named tuples that carry the models' attribute names, so the schemas
dump them as they dump model instances.

A constant number of statements, however many things: the things, then the components of all
of them by the things' ids, then (expanded) the properties and actions of all those components.
Building peewee model instances and statements cost more CPU than these reads take to run.
"""

from __future__ import annotations

import datetime
from functools import cache
from typing import Any, NamedTuple

from marshmallow import missing
from peewee import Tuple

from thingbridge.db import is_postgres
from thingbridge.models import Action, Component, Property, Thing
from thingbridge.models.base import JSONField
from thingbridge.sql import Statement, id_list, one_of, param


class ThingRow(NamedTuple):
    id: str
    name: str
    manufacturer: str
    display_type: str
    main_component_id: str
    status: str
    attributes: dict
    created_at: datetime.datetime
    components: list[ComponentRow]
    # The components again, whole, only when asked for: ThingOut shows them then.
    expanded_components: Any = missing


class ComponentRow(NamedTuple):
    id: int
    thing_id: str
    component_id: str
    name: str
    component_type: str
    capabilities: list[str]
    properties: list[PropertyRow]
    actions: list[ActionRow]


class PropertyRow(NamedTuple):
    component: ComponentRow
    property_id: str
    name: str
    value: str
    unit: str
    type: str
    property_type: str
    last_update: datetime.datetime


class ActionRow(NamedTuple):
    component: ComponentRow
    action_id: str
    parameters: list[dict]


# The columns each statement reads, in the order of the row's fields that come from the table.
_THING = (Thing.id, Thing.name, Thing.manufacturer, Thing.display_type,
          Thing.main_component_id, Thing.status, Thing.attributes, Thing.created_at)
_COMPONENT = (Component.id, Component.thing, Component.component_id, Component.name,
              Component.component_type, Component.capabilities)
_PROPERTY = (Property.component, Property.property_id, Property.name, Property.value,
             Property.unit, Property.type, Property.property_type, Property.last_update)
_ACTION = (Action.component, Action.action_id, Action.parameters)


def _converters(columns) -> list:
    """Per column, how a raw value becomes the model's Python value (None: as it comes). Only
    JSON text and, on SQLite, date strings need it; text and numbers come as they are."""
    return [column.python_value if isinstance(column, JSONField)
            or column.field_type == "DATETIME" else None for column in columns]


def _rows(cursor, converters) -> list[list]:
    if not any(converters):
        return cursor.fetchall()
    rows = []
    for raw in cursor.fetchall():
        row = list(raw)
        for i, convert in enumerate(converters):
            if convert is not None:
                row[i] = convert(row[i])
        rows.append(row)
    return rows


@cache
def _things(where: str, postgres: bool) -> Statement:
    query = Thing.select(*_THING)
    if where == "client":
        query = query.where(Thing.connector_client == param("client"))
    else:
        query = query.where((Thing.app == param("app"))
                            & (Thing.external_subject_id == param("subject")))
    if where == "thing":
        query = query.where(Thing.id == param("thing"))
    elif where == "after":
        query = query.where(Tuple(Thing.created_at, Thing.id)
                            > Tuple(param("stamp"), param("last")))
    if where in ("first", "after"):
        query = query.limit(param("limit"))
    return Statement.build(query.order_by(Thing.created_at, Thing.id))


@cache
def _children(table: str, postgres: bool) -> Statement:
    """The rows of a table whose parent is one of ``parents``, in the order shown."""
    if table == "component":
        return Statement.build(Component.select(*_COMPONENT).where(
            one_of(Component.thing, "parents", postgres, "varchar[]"))
            .order_by(Component.position, Component.id))
    model, columns = (Property, _PROPERTY) if table == "property" else (Action, _ACTION)
    return Statement.build(model.select(*columns).where(
        one_of(model.component, "parents", postgres, "integer[]"))
        .order_by(model.position, model.id))


_CONVERT = {"thing": _converters(_THING), "component": _converters(_COMPONENT),
            "property": _converters(_PROPERTY), "action": _converters(_ACTION)}


# How much of each thing a read fills in: nothing below it (links to things), the components
# (their links), everything (?expand=components).
LINKS, COMPONENTS, EXPANDED = range(3)


def _read(where: str, depth: int, **values) -> list[ThingRow]:
    postgres = is_postgres()
    things = [ThingRow(*row, []) for row in _rows(_things(where, postgres).run(**values),
                                                  _CONVERT["thing"])]
    if not things or depth == LINKS:
        return things
    by_id = {thing.id: thing for thing in things}
    components = {}
    for row in _rows(_children("component", postgres).run(
            parents=id_list(list(by_id), postgres)), _CONVERT["component"]):
        component = ComponentRow(*row, [], [])
        components[component.id] = component
        by_id[component.thing_id].components.append(component)
    if depth == EXPANDED:
        things = [thing._replace(expanded_components=thing.components) for thing in things]
        if components:
            parents = id_list(list(components), postgres)
            for table, row_type, attr in (("property", PropertyRow, "properties"),
                                          ("action", ActionRow, "actions")):
                for row in _rows(_children(table, postgres).run(parents=parents),
                                 _CONVERT[table]):
                    parent = components[row[0]]
                    getattr(parent, attr).append(row_type(parent, *row[1:]))
    return things


def subject_things(app_id: str, subject: str, depth: int, limit: int | None = None,
                   after: tuple[datetime.datetime, str] | None = None) -> list[ThingRow]:
    """The subject's things, oldest first: every one, or ``limit`` of them after the
    (created_at, id) ``after``."""
    if limit is None:
        return _read("subject", depth, app=app_id, subject=subject)
    if after is None:
        return _read("first", depth, app=app_id, subject=subject, limit=limit)
    return _read("after", depth, app=app_id, subject=subject, stamp=after[0], last=after[1],
                 limit=limit)


def subject_thing(app_id: str, subject: str, thing_id: str, depth: int) -> ThingRow | None:
    """One thing of the subject, or None (another app's or subject's thing is none)."""
    things = _read("thing", depth, app=app_id, subject=subject, thing=thing_id)
    return things[0] if things else None


def client_things(client_id: str) -> list[ThingRow]:
    """A connector client's things, whole, oldest first."""
    return _read("client", EXPANDED, client=client_id)
