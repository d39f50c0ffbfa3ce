"""schemas.compiled: the generated dump gives what marshmallow's gives, for every kind of field
and object the schemas meet (and for some they do not, where it must fall back)."""

import datetime
from typing import NamedTuple

import pytest
from marshmallow import Schema, fields, missing, post_dump

from thingbridge.schemas.compiled import attribute_getter, compile_dump, compiled


class Inner(Schema):
    label = fields.String()
    flag = fields.Boolean()


class Shout(fields.String):
    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value).upper()


class Everything(Schema):
    text = fields.String()
    renamed = fields.String(data_key="Renamed")
    read_from = fields.String(attribute="elsewhere")
    dotted = fields.String(attribute="inner.label")
    flag = fields.Boolean()
    number = fields.Integer()
    ratio = fields.Float()
    when = fields.DateTime(format="%Y-%m-%dT%H:%M:%S.%fZ")
    words = fields.List(fields.String())
    numbers = fields.List(fields.Integer())
    one = fields.Nested(Inner)
    many = fields.Nested(Inner, many=True)
    listed = fields.List(fields.Nested(Inner))
    picked = fields.Pluck(Inner, "label", many=True)
    computed = fields.Function(lambda obj: f"computed from {type(obj).__name__}")
    nothing = fields.Function(lambda obj: missing)
    shouted = Shout()
    defaulted = fields.String(dump_default="default")
    made = fields.List(fields.String(), dump_default=list)
    secret = fields.String(load_only=True)


class Row(NamedTuple):
    text: object = missing
    renamed: object = missing
    elsewhere: object = missing
    inner: object = missing
    flag: object = missing
    number: object = missing
    ratio: object = missing
    when: object = missing
    words: object = missing
    numbers: object = missing
    one: object = missing
    many: object = missing
    listed: object = missing
    picked: object = missing
    shouted: object = missing
    defaulted: object = missing
    made: object = missing
    secret: object = missing


class Plain:
    def __init__(self, **values):
        self.__dict__.update(values)


FULL = {"text": "t", "renamed": "r", "elsewhere": "e", "inner": {"label": "deep"},
        "flag": True, "number": 3, "ratio": 0.5,
        "when": datetime.datetime(2026, 12, 6, 14, 0, 0, 123456),
        "words": ["a", "b"], "numbers": [1, 2], "one": {"label": "x", "flag": False},
        "many": [{"label": "y"}, Plain(label="z", flag=True)],
        "listed": [Row(), {"flag": 1}], "picked": [{"label": "p"}],
        "shouted": "quiet", "defaulted": "given", "made": ["m"], "secret": "s"}
NULLS = dict.fromkeys(FULL)
ODD = {**FULL, "text": 5, "renamed": b"bytes", "flag": 0, "number": "7", "words": ("t", 1),
       "one": Plain(label=None, flag="yes"), "many": [], "listed": None, "inner": None}


@pytest.mark.parametrize("values", [FULL, NULLS, ODD, {}], ids=["full", "nulls", "odd", "empty"])
@pytest.mark.parametrize("kind", [dict, Plain, Row], ids=["dict", "object", "named-tuple"])
def test_equal_to_marshmallow(values, kind):
    obj = kind(**values) if kind is not dict else dict(values)
    assert compile_dump(Everything())(obj) == Everything().dump(obj)


def test_many_and_compiled_schema():
    objs = [Row(**FULL), Plain(**NULLS), dict(ODD)]
    assert compile_dump(Everything(many=True))(objs) == Everything(many=True).dump(objs)
    schema = compiled(Everything())
    assert schema.dump(objs[0]) == Everything().dump(objs[0])
    assert schema.dump(objs, many=True) == Everything(many=True).dump(objs)


def test_attribute_getter_is_get_value():
    getter = attribute_getter("inner.label")
    assert getter(Row(inner={"label": "v"})) == "v"
    assert getter(Plain(inner=Plain(label="w"))) == "w"
    assert getter(Row()) is missing and getter({"inner": None}) is missing
    # A dict's own attributes answer when it has no such key, as with marshmallow.
    empty = {}
    assert attribute_getter("items")(empty) == empty.items


def test_schemas_with_dump_hooks_are_refused():
    class Hooked(Schema):
        name = fields.String()

        @post_dump
        def shout(self, data, **kwargs):
            return data

    with pytest.raises(TypeError, match="dump hooks"):
        compile_dump(Hooked())
