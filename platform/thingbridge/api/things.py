"""/api/v1/things: the subject's things; apps create and change their own, connectors theirs."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from thingbridge.api.common import ID, KEY, Blueprint, link, links, protected
from thingbridge.api.pages import PageQuery, page_bounds, page_from, page_schema, wants_page
from thingbridge.auth.guard import subject_id
from thingbridge.db import db, locking, utcnow
from thingbridge.errors import ApiError, found
from thingbridge.limits import quotas
from thingbridge.models import Property, Thing
from thingbridge.outbox import events
from thingbridge.schemas.common import ISO
from thingbridge.schemas.compiled import compile_dump, compiled
from thingbridge.schemas.links import ThingLink
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
from thingbridge.things import reading
from thingbridge.things.service import (
    component_spec,
    own_component,
    own_property,
    own_thing,
    read_component,
    thing_data,
    writable_thing,
)
from thingbridge.things.sync import create_component

blp = Blueprint("things", __name__, url_prefix="/api/v1/things",
                description="Things of an end user (X-External-Subject-Id)")
WRITE, READ = "connctd.connector", "connctd.things.read"
THING, CREATED = "/api/v1/things/{thing_id}", "$response.body#/Id"
PROPERTY = f"{THING}/components/{{component_id}}/properties/{{property_id}}"
FIRST_PROPERTY = {"thing_id": CREATED, "component_id": "$request.body#/components/0/id",
                  "property_id": "$request.body#/components/0/properties/0/id"}


def _data(thing: Thing) -> dict:
    return thing_data(thing.id, thing.name, thing.manufacturer, thing.display_type,
                      thing.main_component_id, thing.status)


class ThingsQuery(ExpandArgs, PageQuery):
    pass


LinkPage, ThingPage = page_schema("things", ThingLink), page_schema("things", ThingOut)
# Compiled once from the schemas (schemas.compiled): what their dump gives, at a fraction of
# the CPU (dumping changes no state, so threads may share them).
DUMP = {(False, False): compile_dump(ThingLink(many=True)),
        (True, False): compile_dump(ThingOut(many=True)),
        (False, True): compile_dump(LinkPage()), (True, True): compile_dump(ThingPage())}


def _write_spent() -> None:
    """429 once the app spent this minute's writes: each is an event, fanned out to every
    webhook of the app, so writes at any speed would be work and storage at any speed."""
    quotas.Rate("WRITES_PER_MINUTE", f"write:{g.app.id}", "thing and property writes").check()


@blp.route("")
class Things(MethodView):
    @protected(blp, READ, subject=True, errors=(400,))
    @blp.arguments(ThingsQuery, location="query")
    @blp.response(200, description="[{href}] links, or whole things with ?expand=components; "
                                   "a page of either with ?limit= or ?after=")
    @blp.doc(responses={200: {"content": {"application/json": {"schema": {"anyOf": [
        {"type": "array", "items": ThingLink}, {"type": "array", "items": ThingOut},
        LinkPage, ThingPage]}}}}})
    def get(self, args):
        """List the subject's things as links, or whole with ?expand=components (oldest
        first; every one, or a page with ?limit= and ?after=)"""
        subject, expand, paged = subject_id(), bool(args.get("expand")), wants_page(args)
        depth = reading.EXPANDED if expand else reading.LINKS
        if not paged:
            return DUMP[expand, paged](reading.subject_things(g.app.id, subject, depth))
        limit, after = page_bounds(args)
        rows = reading.subject_things(g.app.id, subject, depth, limit + 1, after)
        return DUMP[expand, paged](page_from(rows, args))

    @protected(blp, WRITE, subject=True, errors=(400, 429))
    @blp.arguments(ThingIn)
    @blp.response(201, ThingCreatedSchema)
    @blp.doc(**links(
        201, GetThing=link(THING, "get", True, thing_id=CREATED),
        SetThingStatus=link(THING, "patch", True, thing_id=CREATED),
        DeleteThing=link(THING, "delete", True, thing_id=CREATED),
        GetMainComponent=link(f"{THING}/components/{{component_id}}", "get", True,
                              thing_id=CREATED, component_id="$request.body#/maincomponentid"),
        GetFirstProperty=link(PROPERTY, "get", True, **FIRST_PROPERTY),
        SetFirstProperty=link(PROPERTY, "put", True, **FIRST_PROPERTY),
        TriggerFirstAction=link(
            f"{THING}/components/{{component_id}}/actions/{{action_id}}", "post", True,
            thing_id=CREATED, component_id="$request.body#/components/0/id",
            action_id="$request.body#/components/0/actions/0/id")))
    def post(self, body):
        """Create a thing of the app for the subject (lowercase or camelCase keys)"""
        _write_spent()
        subject = subject_id()
        key = f"{g.app.id}:{subject}"
        things = Thing.select().where((Thing.app == g.app) & (Thing.external_subject_id == subject))
        items = sum(len(c["properties"]) + len(c["actions"]) for c in body["components"])
        # What one read of the subject's things can cost is what is stored for it: a thing
        # may hold 5,000 properties, so the things alone do not bound it.
        with (quotas.room_for("THINGS_PER_SUBJECT", key, things.count, "things for this subject"),
              quotas.room_for("PROPERTIES_PER_SUBJECT", key,
                              lambda: reading.subject_items(g.app.id, subject),
                              "properties and actions for this subject", items)):
            thing = Thing.create(app=g.app, external_subject_id=subject, created_by=g.app,
                                 name=body["name"], manufacturer=body["manufacturer"],
                                 display_type=body["displaytype"],
                                 main_component_id=body["maincomponentid"],
                                 status=body["status"], attributes=body["attributes"])
            for position, component in enumerate(body["components"]):
                create_component(thing, component_spec(component), position)
            events.emit(g.app.id, "thing.created", subject, _data(thing))
        return thing


@blp.route(f"/<{ID}:thing_id>", endpoint="thing")
class ThingById(MethodView):
    @protected(blp, READ, subject=True, errors=(400, 404))
    @blp.arguments(ExpandArgs, location="query")
    @blp.response(200, compiled(ThingOut()))
    def get(self, args, thing_id):
        """Get one thing (components inline with ?expand=components)"""
        depth = reading.EXPANDED if args.get("expand") else reading.COMPONENTS
        return found(reading.subject_thing(g.app.id, subject_id(), thing_id, depth), "thing")

    @protected(blp, WRITE, subject=True, errors=(400, 404, 409, 429))
    @blp.arguments(StatusIn)
    @blp.response(204)
    def patch(self, body, thing_id):
        """Set the status of one of the app's things"""
        _write_spent()
        thing = writable_thing(g.app, subject_id(), thing_id)
        with db.atomic():
            # The old value is read under the row lock, so concurrent writers each see the
            # value the other left and no change goes without its event; a DELETE that
            # committed while this waited for the lock leaves nothing to change.
            thing = found(locking(Thing.select().where(Thing.id == thing.id)).first(), "thing")
            Thing.update(status=body["status"], updated_at=utcnow()).where(
                Thing.id == thing.id).execute()
            if thing.status != body["status"]:
                thing.status = body["status"]
                events.emit(thing.app_id, "thing.updated", thing.external_subject_id,
                            _data(thing))

    @protected(blp, WRITE, subject=True, errors=(400, 404, 409, 429))
    @blp.response(204)
    def delete(self, thing_id):
        """Delete one of the app's things"""
        _write_spent()
        thing = writable_thing(g.app, subject_id(), thing_id)
        with db.atomic():
            if not Thing.delete().where(Thing.id == thing.id).execute():
                return  # a concurrent DELETE won: it emitted the event
            events.emit(thing.app_id, "thing.deleted", thing.external_subject_id,
                        {"thingId": thing.id})


@blp.route(f"/<{ID}:thing_id>/components/<{KEY}:component_id>", endpoint="component")
@protected(blp, READ, subject=True, errors=(400, 404))
@blp.response(200, ComponentOut)
def get_component(thing_id, component_id):
    """Get one component: links to its properties, and its actions"""
    return read_component(own_thing(g.app, subject_id(), thing_id), component_id)


@blp.route(f"/<{ID}:thing_id>/components/<{KEY}:component_id>/properties/<{KEY}:property_id>",
           endpoint="property")
class PropertyById(MethodView):
    @protected(blp, READ, subject=True, errors=(400, 404))
    @blp.response(200, PropertyOut)
    def get(self, thing_id, component_id, property_id):
        """Get one property's value, unit, type and last update"""
        thing = own_thing(g.app, subject_id(), thing_id)
        return own_property(own_component(thing, component_id), property_id)

    @protected(blp, WRITE, subject=True, errors=(400, 404, 409, 429))
    @blp.arguments(ValueIn)
    @blp.response(204)
    def put(self, body, thing_id, component_id, property_id):
        """Set a property value of one of the app's things (checked against its type)"""
        _write_spent()
        thing = writable_thing(g.app, subject_id(), thing_id)
        prop = own_property(own_component(thing, component_id), property_id)
        if problem := check_value(prop.type, body["value"]):
            raise ApiError(400, f"invalid value: {problem}")
        now = utcnow()
        with db.atomic():
            prop = found(locking(Property.select().where(Property.id == prop.id)).first(),
                         "property")
            Property.update(value=body["value"], last_update=now).where(
                Property.id == prop.id).execute()
            if prop.value != body["value"]:
                events.emit(thing.app_id, "thing.property_changed",
                            thing.external_subject_id, {
                                "thingId": thing.id, "componentId": component_id,
                                "propertyId": property_id, "oldValue": prop.value,
                                "newValue": body["value"], "lastUpdate": now.strftime(ISO)})
