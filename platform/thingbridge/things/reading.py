"""Whole things as the API and the console show them, read with statements built once
(``thingbridge.sql``) into named tuples that carry the models' attribute names, so the schemas
dump them as they dump model instances.

One statement, however many things and however deep: the things, then (as UNION ALL branches of
the same statement) their components and, expanded, those components' properties and actions.
Building peewee model instances and statements cost more CPU than these reads take to run, and
each round trip more than the rows it brings.
"""

from __future__ import annotations

import datetime
from functools import cache
from typing import Any, NamedTuple

from marshmallow import missing
from peewee import Tuple

from thingbridge.db import is_postgres
from thingbridge.db_pool import repeatable
from thingbridge.models import Action, Component, Property, Thing
from thingbridge.models.base import JSONField
from thingbridge.sql import Statement, param


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


# The columns each branch of the read takes, in the order of the row's fields that come from
# the table.
_THING = (Thing.id, Thing.name, Thing.manufacturer, Thing.display_type,
          Thing.main_component_id, Thing.status, Thing.attributes, Thing.created_at)
_COMPONENT = (Component.thing, Component.component_id, Component.name,
              Component.component_type, Component.capabilities)
_PROPERTY = (Property.property_id, Property.name, Property.value, Property.unit,
             Property.type, Property.property_type, Property.last_update)
_ACTION = (Action.action_id, Action.parameters)


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


# How much of each thing a read fills in: nothing below it (links to things), the components
# (their links), everything (?expand=components).
LINKS, COMPONENTS, EXPANDED = range(3)

# Every row of the read has these columns: the kind (an index into _KINDS), its place among
# its siblings, its id, its parent component's id, then seven texts and a time, NULL where the
# kind has none. One statement, whatever the depth: round trips cost more than the rows.
_TEXTS, _KINDS = 7, ((_THING[:-1], _THING[-1]), (_COMPONENT, None),
                     (_PROPERTY[:-1], _PROPERTY[-1]), (_ACTION, None))


def _q(name: str) -> str:
    return '"' + name + '"'


def _branch(kind: int, order: str, own_id: str, parent: str, table: str, where: str) -> str:
    texts, time = _KINDS[kind]
    # A kind's one JSON column is the last text, its other texts fill from the first.
    plain = [_q(c.column_name) for c in texts if not isinstance(c, JSONField)]
    json_column = [_q(c.column_name) for c in texts if isinstance(c, JSONField)]
    columns = (plain + ["CAST(NULL AS text)"] * (_TEXTS - 1 - len(plain))
               + (json_column or ["CAST(NULL AS text)"]))
    columns.append(_q(time.column_name) if time else "CAST(NULL AS timestamp)")
    return (f"SELECT {kind}, {order}, {own_id}, {parent}, {', '.join(columns)} "
            f"FROM {table}{where}")


@cache
def _tree(where: str, depth: int, postgres: bool) -> Statement:
    """The things and, down to ``depth``, their components, properties and actions, in one
    statement: the things' own statement as a CTE, each kind below it a UNION ALL branch,
    ordered by kind, then position (the things': created_at, id), then id."""
    things = _things(where, postgres)
    if depth == LINKS:
        return things
    no_id = "CAST(NULL AS integer)"
    component, prop, action = (_q(m._meta.table_name) for m in (Component, Property, Action))
    of_components = f' WHERE {_q(Property.component.column_name)} IN (SELECT "id" FROM c)'
    branches = [
        _branch(0, 'ROW_NUMBER() OVER (ORDER BY "created_at", "id")', "0", no_id, "t", ""),
        _branch(1, '"position"', '"id"', no_id, "c", "")]
    if depth == EXPANDED:
        branches += [_branch(2, '"position"', '"id"', _q(Property.component.column_name),
                             prop, of_components),
                     _branch(3, '"position"', '"id"', _q(Action.component.column_name),
                             action, of_components)]
    sql = (f"WITH t AS ({things.sql}), c AS (SELECT * FROM {component} "
           f'WHERE {_q(Component.thing.column_name)} IN (SELECT "id" FROM t)) '
           + " UNION ALL ".join(branches) + " ORDER BY 1, 2, 3")
    # A read, though it does not start with SELECT: run again on a new connection if the one
    # it met was lost, as every other read is.
    return Statement(repeatable(sql), things.names)


_THING_JSON, _COMPONENT_JSON, _ACTION_JSON = (
    Thing.attributes.python_value, Component.capabilities.python_value,
    Action.parameters.python_value)
# A time comes as a string from SQLite, as a datetime already from PostgreSQL.
_TIME = {False: Thing.created_at.python_value, True: lambda value: value}


def _read(where: str, depth: int, **values) -> list[ThingRow]:
    postgres = is_postgres()
    cursor, time_value = _tree(where, depth, postgres).run(**values), _TIME[postgres]
    if depth == LINKS:
        return [ThingRow(*row[:6], _THING_JSON(row[6]), time_value(row[7]), [])
                for row in cursor.fetchall()]
    things, by_id, components = [], {}, {}
    for kind, _, own_id, parent, t1, t2, t3, t4, t5, t6, t7, time in cursor.fetchall():
        if kind == 0:
            thing = ThingRow(t1, t2, t3, t4, t5, t6, _THING_JSON(t7), time_value(time), [])
            things.append(thing)
            by_id[t1] = thing
        elif kind == 1:
            component = ComponentRow(own_id, t1, t2, t3, t4, _COMPONENT_JSON(t7), [], [])
            components[own_id] = component
            by_id[t1].components.append(component)
        elif kind == 2:
            owner = components[parent]
            owner.properties.append(PropertyRow(owner, t1, t2, t3, t4, t5, t6, time_value(time)))
        else:
            owner = components[parent]
            owner.actions.append(ActionRow(owner, t1, _ACTION_JSON(t7)))
    if depth == EXPANDED:
        return [thing._replace(expanded_components=thing.components) for thing in things]
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


def subject_items(app_id: str, subject: str) -> int:
    """How many properties and actions the subject's things hold."""
    mine = (Thing.app == app_id) & (Thing.external_subject_id == subject)
    return sum(model.select().join(Component).join(Thing).where(mine).count()
               for model in (Property, Action))


def subject_thing(app_id: str, subject: str, thing_id: str, depth: int) -> ThingRow | None:
    """One thing of the subject, or None (another app's or subject's thing is none)."""
    things = _read("thing", depth, app=app_id, subject=subject, thing=thing_id)
    return things[0] if things else None


def client_things(client_id: str) -> list[ThingRow]:
    """A connector client's things, whole, oldest first."""
    return _read("client", EXPANDED, client=client_id)
