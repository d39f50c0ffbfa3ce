"""/api/v1/things: the subject's things; apps create and change their own, connectors theirs."""

from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from thingbridge.api.common import href, protected
from thingbridge.auth.guard import subject_id
from thingbridge.db import db, locking, utcnow
from thingbridge.errors import ApiError, not_found
from thingbridge.models import Component, Property, Thing
from thingbridge.outbox import events
from thingbridge.schemas.things import (
    ComponentOut,
    ExpandArgs,
    PropertyOut,
    StatusIn,
    ThingCreatedSchema,
    ThingIn,
    ThingOut,
    ValueIn,
    check_value,
)
from thingbridge.things.service import (
    ISO,
    component_out,
    component_spec,
    property_out,
    thing_data,
    thing_path,
    things_out,
)
from thingbridge.things.sync import create_component

blp = Blueprint("things", __name__, url_prefix="/api/v1/things",
                description="Things of an end user (X-External-Subject-Id)")
WRITE, READ = "connctd.connector", "connctd.things.read"


def own_thing(thing_id: str) -> Thing:
    thing = Thing.get_or_none((Thing.id == thing_id) & (Thing.app == g.app)
                              & (Thing.external_subject_id == subject_id()))
    if thing is None:
        raise not_found("thing")
    return thing


def writable_thing(thing_id: str) -> Thing:
    thing = own_thing(thing_id)
    if thing.connector_client_id is not None:
        raise ApiError(409, "this thing is owned by a connector client and is read-only; "
                            "it changes when the provider's device does", "CONNECTOR_OWNED")
    return thing


def own_component(thing: Thing, component_id: str) -> Component:
    component = Component.get_or_none((Component.thing == thing)
                                      & (Component.component_id == component_id))
    if component is None:
        raise not_found("component")
    return component


def own_property(component: Component, property_id: str) -> Property:
    prop = Property.get_or_none((Property.component == component)
                                & (Property.property_id == property_id))
    if prop is None:
        raise not_found("property")
    return prop


def _data(thing: Thing) -> dict:
    return thing_data(thing.id, thing.name, thing.manufacturer, thing.display_type,
                      thing.main_component_id, thing.status)


@blp.route("", methods=["POST"])
@protected(blp, WRITE, subject=True, errors=(400,))
@blp.arguments(ThingIn)
@blp.response(201, ThingCreatedSchema)
def create_thing(body):
    """Create a thing of the app for the subject (lowercase or camelCase keys)"""
    subject = subject_id()
    with db.atomic():
        thing = Thing.create(app=g.app, external_subject_id=subject, created_by=g.app,
                             name=body["name"], manufacturer=body["manufacturer"],
                             display_type=body["displaytype"],
                             main_component_id=body["maincomponentid"], status=body["status"],
                             attributes=body["attributes"])
        for position, component in enumerate(body["components"]):
            create_component(thing, component_spec(component), position)
        events.emit(g.app.id, "thing.created", subject, _data(thing))
    return {"Id": thing.id}


@blp.route("", methods=["GET"])
@protected(blp, READ, subject=True, errors=(400,))
@blp.arguments(ExpandArgs, location="query")
@blp.response(200, description="[{href}] links, or whole things (ThingOut) with "
                                "?expand=components")
def list_things(args):
    """List the subject's things as links, or whole with ?expand=components"""
    things = list(Thing.select().where((Thing.app == g.app)
                                       & (Thing.external_subject_id == subject_id()))
                  .order_by(Thing.created_at, Thing.id))
    if args.get("expand"):
        return things_out(href, things, expand=True)
    return [{"href": href(thing_path(t.id))} for t in things]


@blp.route("/<thing_id>", methods=["GET"])
@protected(blp, READ, subject=True, errors=(400, 404))
@blp.arguments(ExpandArgs, location="query")
@blp.response(200, ThingOut)
def get_thing(args, thing_id):
    """Get one thing (components inline with ?expand=components)"""
    return things_out(href, [own_thing(thing_id)], expand=bool(args.get("expand")))[0]


@blp.route("/<thing_id>", methods=["PATCH"])
@protected(blp, WRITE, subject=True, errors=(400, 404, 409))
@blp.arguments(StatusIn)
@blp.response(204)
def patch_thing(body, thing_id):
    """Set the status of one of the app's things"""
    thing = writable_thing(thing_id)
    with db.atomic():
        # The old value is read under the row lock, so concurrent writers each see the value
        # the other left and no change goes without its event.
        thing = locking(Thing.select().where(Thing.id == thing.id)).get()
        Thing.update(status=body["status"], updated_at=utcnow()).where(
            Thing.id == thing.id).execute()
        if thing.status != body["status"]:
            thing.status = body["status"]
            events.emit(thing.app_id, "thing.updated", thing.external_subject_id, _data(thing))


@blp.route("/<thing_id>", methods=["DELETE"])
@protected(blp, WRITE, subject=True, errors=(400, 404, 409))
@blp.response(204)
def delete_thing(thing_id):
    """Delete one of the app's things"""
    thing = writable_thing(thing_id)
    with db.atomic():
        if not Thing.delete().where(Thing.id == thing.id).execute():
            return  # a concurrent DELETE won: it emitted the event
        events.emit(thing.app_id, "thing.deleted", thing.external_subject_id,
                    {"thingId": thing.id})


@blp.route("/<thing_id>/components/<component_id>", methods=["GET"])
@protected(blp, READ, subject=True, errors=(400, 404))
@blp.response(200, ComponentOut)
def get_component(thing_id, component_id):
    """Get one component: links to its properties, and its actions"""
    component = own_component(own_thing(thing_id), component_id)
    properties = list(component.properties.order_by(Property.position, Property.id))
    actions = list(component.actions)
    return component_out(href, thing_id, component, properties, actions, expand=False)


@blp.route("/<thing_id>/components/<component_id>/properties/<property_id>",
           methods=["GET"])
@protected(blp, READ, subject=True, errors=(400, 404))
@blp.response(200, PropertyOut)
def get_property(thing_id, component_id, property_id):
    """Get one property's value, unit, type and last update"""
    component = own_component(own_thing(thing_id), component_id)
    return property_out(own_property(component, property_id))


@blp.route("/<thing_id>/components/<component_id>/properties/<property_id>",
           methods=["PUT"])
@protected(blp, WRITE, subject=True, errors=(400, 404, 409))
@blp.arguments(ValueIn)
@blp.response(204)
def put_property(body, thing_id, component_id, property_id):
    """Set a property value of one of the app's things (checked against its type)"""
    thing = writable_thing(thing_id)
    prop = own_property(own_component(thing, component_id), property_id)
    if problem := check_value(prop.type, body["value"]):
        raise ApiError(400, f"invalid value: {problem}")
    now = utcnow()
    with db.atomic():
        prop = locking(Property.select().where(Property.id == prop.id)).get()
        Property.update(value=body["value"], last_update=now).where(
            Property.id == prop.id).execute()
        if prop.value != body["value"]:
            events.emit(thing.app_id, "thing.property_changed", thing.external_subject_id, {
                "thingId": thing.id, "componentId": component_id, "propertyId": property_id,
                "oldValue": prop.value, "newValue": body["value"],
                "lastUpdate": now.strftime(ISO)})
