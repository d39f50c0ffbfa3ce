"""things.reading: rows read with constant statements dump as the model instances do, through
marshmallow and through the compiled dump, on PostgreSQL and SQLite; link templates build what
werkzeug builds."""

import copy

import pytest
from helpers import LAMP, sync_things
from peewee import prefetch

from thingbridge import db_pool
from thingbridge.connectors.contract import ComponentSpec, PropertySpec, ThingSpec
from thingbridge.db import db
from thingbridge.models import (
    Action,
    App,
    Component,
    ConnectorClient,
    ConnectorInstance,
    Property,
    Thing,
)
from thingbridge.schemas.compiled import compile_dump
from thingbridge.schemas.links import external_url
from thingbridge.schemas.things import ThingIn, ThingOut
from thingbridge.things import reading
from thingbridge.things.service import component_spec
from thingbridge.things.sync import create_component

EVERY_KIND = {
    "name": "Ünïcode \"station\"", "manufacturer": "", "displaytype": "", "status": "UNKNOWN",
    "maincomponentid": "climate", "attributes": {},
    "components": [
        {"id": "climate", "properties": [
            {"id": "temp", "value": "-3.5", "unit": "°C", "type": "NUMBER"},
            {"id": "note", "value": "", "type": "STRING", "propertytype": "core.NOTE"},
            {"id": "raining", "value": "true", "type": "BOOLEAN", "name": "Raining"}]},
        {"id": "controls", "name": "Controls", "capabilities": ["a", "b"], "actions": [
            {"id": "reset"},
            {"id": "set", "parameters": [
                {"name": "level", "type": "NUMBER", "required": True},
                {"name": "label"}, {"name": "on", "type": "BOOLEAN", "required": False}]}]}],
}


def _create(app, body, subject="alice"):
    body = ThingIn().load(copy.deepcopy(body))
    thing = Thing.create(app=app, external_subject_id=subject, created_by=app,
                         name=body["name"], manufacturer=body["manufacturer"],
                         display_type=body["displaytype"],
                         main_component_id=body["maincomponentid"], status=body["status"],
                         attributes=body["attributes"])
    for position, component in enumerate(body["components"]):
        create_component(thing, component_spec(component), position)
    return thing


def _models(query):
    """The same things as peewee model instances, children attached as the rows have them."""
    things = prefetch(query.order_by(Thing.created_at, Thing.id),
                      Component.select().order_by(Component.position, Component.id),
                      Property.select().order_by(Property.position, Property.id),
                      Action.select().order_by(Action.position, Action.id))
    for thing in things:
        thing.expanded_components = thing.components
    return things


@pytest.fixture
def seeded(database, flask_app):
    with flask_app.app_context():  # links need the app; a request's end would close the db
        app, _ = App.register("reader")
        for body in (LAMP, EVERY_KIND, LAMP):
            _create(app, body)
        _create(app, LAMP, subject="bob")
        instance = ConnectorInstance.create(app=app, type_id="openweathermap",
                                            configuration={"app_key": "k" * 32})
        client = ConnectorClient.create(app=app, instance=instance, type_id="openweathermap",
                                        external_subject_id="alice",
                                        configuration={"city": "Berlin"}, tokens={})
        sync_things(client, [ThingSpec("station-1", "Station", "climate", [ComponentSpec(
            "climate", properties=[PropertySpec("temperature", "20.5", unit="°C")])])])
        yield app, client


def test_rows_dump_as_models(seeded):
    app, client = seeded
    mine = (Thing.app == app) & (Thing.external_subject_id == "alice")
    rows = reading.subject_things(app.id, "alice", reading.EXPANDED)
    expected = ThingOut(many=True).dump(_models(Thing.select().where(mine)))
    assert len(rows) == 4 and ThingOut(many=True).dump(rows) == expected
    assert compile_dump(ThingOut(many=True))(rows) == expected
    client_rows = reading.client_things(client.id)
    assert compile_dump(ThingOut(many=True))(client_rows) == ThingOut(many=True).dump(
        _models(Thing.select().where(Thing.connector_client == client.id)))
    one = reading.subject_thing(app.id, "alice", rows[1].id, reading.COMPONENTS)
    shown = compile_dump(ThingOut())(one)
    assert "components" not in shown
    assert shown == {k: v for k, v in expected[1].items() if k != "components"}


def test_pages_and_ownership(seeded):
    app, _ = seeded
    every = reading.subject_things(app.id, "alice", reading.LINKS)
    first = reading.subject_things(app.id, "alice", reading.LINKS, limit=2)
    rest = reading.subject_things(app.id, "alice", reading.LINKS, limit=5,
                                  after=(first[-1].created_at, first[-1].id))
    assert [t.id for t in first + rest] == [t.id for t in every]
    assert reading.subject_thing(app.id, "bob", every[0].id, reading.EXPANDED) is None
    assert reading.subject_thing(app.id, "alice", "nope", reading.EXPANDED) is None


@pytest.mark.parametrize("base", ["http://localhost", "https://iot.example.com/prefix/"])
def test_link_templates_build_what_werkzeug_builds(flask_app, base, monkeypatch):
    monkeypatch.setitem(flask_app.config, "PUBLIC_BASE_URL", base)
    odd = ["plain-id_1", "with space", "per%cent", "ü/slash?#", "a:b@c!$&'()*+,;=", "~."]
    with flask_app.test_request_context("/"):
        adapter = flask_app.url_map.bind("x")
        for value in odd:
            values = {"thing_id": value, "component_id": value, "property_id": value}
            built = adapter.build("things.property", values)
            assert external_url("things.property", **values) == base.rstrip("/") + built
        # An int converter takes no text marker: werkzeug builds each such link.
        assert external_url("descriptions.description", description_id=7).endswith(
            "/api/v1/connectors/descriptions/7")


def test_every_read_may_run_again_on_a_lost_connection(seeded, monkeypatch):
    """The pool runs a statement again on a new connection only if it cannot repeat a write;
    the things reads begin with WITH, not SELECT, so they say so themselves."""
    app, client = seeded
    sent, execute = [], db.obj.execute_sql
    monkeypatch.setattr(db.obj, "execute_sql",
                        lambda sql, params=None, *a, **k: sent.append(sql)
                        or execute(sql, params, *a, **k))
    for depth in (reading.LINKS, reading.COMPONENTS, reading.EXPANDED):
        rows = reading.subject_things(app.id, "alice", depth)
        reading.subject_things(app.id, "alice", depth, limit=1,
                               after=(rows[0].created_at, rows[0].id))
        reading.subject_thing(app.id, "alice", rows[0].id, depth)
    reading.client_things(client.id)
    assert len(sent) == 10
    assert all(db_pool._repeatable(sql) for sql in sent), sent
