"""``Schema.dump`` for hot read paths, generated once from a schema's declared fields.

marshmallow's own dump asks each field, for each object, how to read and format its value
(dozens of calls per field); for a list of 20 expanded things (some 120 objects) that was the
largest share of the request. ``compile_dump`` makes those decisions once, when it is built,
from the same field objects, so the schema stays the one description of the answer (and of the
OpenAPI document). It gives what ``schema.dump`` gives: a field whose class formats values its
own way is asked to (``field._serialize``); only the built-in String, Boolean, List and Nested
take a shorter path for values already in their output form. Schemas with dump hooks are
refused rather than imitated.
"""

from __future__ import annotations

from collections.abc import Callable

from marshmallow import Schema, fields, missing
from marshmallow.schema import POST_DUMP, PRE_DUMP
from marshmallow.utils import get_value

# Classes whose instances marshmallow's get_value reads with getattr alone: it tries obj[key]
# first, which a tuple (a named tuple row) or an object without __getitem__ cannot answer.
# Anything else with __getitem__ (a dict aside) goes through get_value itself.
_ATTRIBUTES_ONLY: set[type] = set()


def _attributes_only(obj) -> bool:
    cls = obj.__class__
    if cls is not dict and (issubclass(cls, tuple) or not hasattr(cls, "__getitem__")):
        _ATTRIBUTES_ONLY.add(cls)
        return True
    return False


def _get(obj, key: str):
    cls = obj.__class__
    if cls in _ATTRIBUTES_ONLY or _attributes_only(obj):
        return getattr(obj, key, missing)
    if cls is dict:
        return obj[key] if key in obj else getattr(obj, key, missing)
    return get_value(obj, key, missing)


def attribute_getter(path: str) -> Callable:
    """``obj -> value`` equal to marshmallow's ``get_value(obj, path)`` (``missing`` when
    there is none; dotted paths reach related objects)."""
    if "." not in path:
        return lambda obj: _get(obj, path)
    keys = path.split(".")

    def get(obj):
        for key in keys:
            obj = getattr(obj, key, missing) if obj.__class__ in _ATTRIBUTES_ONLY else _get(
                obj, key)
        return obj

    return get


def _same_serialize(field: fields.Field, base: type[fields.Field]) -> bool:
    """The field formats values as ``base`` does (its class did not override it)."""
    return type(field)._serialize is base._serialize


def _plain_function(field: fields.Field) -> Callable | None:
    """What a ``Function`` field that formats as ``Function`` does calls with the object."""
    if isinstance(field, fields.Function) and _same_serialize(field, fields.Function):
        return field.serialize_func
    return None


def _formatter(field: fields.Field, name: str) -> Callable:
    """``value, obj -> output`` equal to ``field._serialize(value, name, obj)``."""
    if isinstance(field, fields.Nested) and _same_serialize(field, fields.Nested):
        schema = field.schema
        one, many = compile_object(schema), schema.many or field.many
        if many:
            return lambda value, obj: None if value is None else [one(item) for item in value]
        return lambda value, obj: None if value is None else one(value)
    if isinstance(field, fields.List) and _same_serialize(field, fields.List):
        inner = _formatter(field.inner, name)
        return lambda value, obj: None if value is None else [inner(each, obj) for each in value]
    if (func := _plain_function(field)) is not None:
        return lambda value, obj: func(obj)
    fallback = field._serialize
    if _same_serialize(field, fields.String):
        return lambda value, obj: value if value.__class__ is str else fallback(value, name, obj)
    if _same_serialize(field, fields.Boolean):
        return lambda value, obj: value if value is True or value is False else fallback(
            value, name, obj)
    return lambda value, obj: fallback(value, name, obj)


def _nested(field: fields.Field):
    """The compiled dump of one nested object, if the field lists nested objects (a Nested
    with many, or a List of a Nested) the way marshmallow does, else None."""
    if isinstance(field, fields.List) and _same_serialize(field, fields.List):
        inner = field.inner
        if (isinstance(inner, fields.Nested) and _same_serialize(inner, fields.Nested)
                and not (inner.schema.many or inner.many)):
            return compile_object(inner.schema)
    if isinstance(field, fields.Nested) and _same_serialize(field, fields.Nested):
        if field.schema.many or field.many:
            return compile_object(field.schema)
    return None


def compile_object(schema: Schema) -> Callable:
    """``obj -> dict`` equal to ``schema.dump(obj, many=False)``.

    Two functions do it: one written out as Python source, a statement per field, for objects
    read by attribute alone (named tuple rows, models); and one looping over the fields, for
    anything else (dicts). The source is generated here, once per schema."""
    if schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]:
        raise TypeError(f"{type(schema).__name__} has dump hooks: dump it with marshmallow")
    if type(schema).get_attribute is not Schema.get_attribute:
        raise TypeError(f"{type(schema).__name__} reads attributes its own way")
    plan, namespace = [], {"missing": missing, "ATTRIBUTES_ONLY": _ATTRIBUTES_ONLY,
                           "attributes_only": _attributes_only}
    lines = ["def dump(obj):",
             "    if obj.__class__ not in ATTRIBUTES_ONLY and not attributes_only(obj):",
             "        return loop(obj)",
             "    out = {}"]
    for i, (name, field) in enumerate(schema.dump_fields.items()):
        key = field.data_key if field.data_key is not None else name
        formatter = namespace[f"format{i}"] = _formatter(field, name)
        default = namespace[f"default{i}"] = field.dump_default
        path = field.attribute or name
        # Fields that read no attribute (Function, Method, Constant) compute from the object.
        getter = attribute_getter(path) if field._CHECK_ATTRIBUTE else None
        plan.append((key, getter, formatter, default))
        if getter is None:
            if (func := _plain_function(field)) is not None:
                namespace[f"function{i}"] = func
                lines.append(f"    v = function{i}(obj)")
            else:
                lines.append(f"    v = format{i}(None, obj)")
            lines += ["    if v is not missing:",
                      f"        out[{key!r}] = v"]
            continue
        if "." in path:
            namespace[f"get{i}"] = getter
            lines.append(f"    v = get{i}(obj)")
        else:
            lines.append(f"    v = getattr(obj, {path!r}, missing)")
        if default is not missing:
            lines += ["    if v is missing:",
                      f"        v = default{i}() if callable(default{i}) else default{i}"]
        lines.append("    if v is not missing:")
        if nested := _nested(field):
            namespace[f"nested{i}"] = nested
            lines.append(f"        out[{key!r}] = None if v is None else "
                         f"[nested{i}(each) for each in v]")
        elif _same_serialize(field, fields.String):
            lines.append(f"        out[{key!r}] = v if v.__class__ is str else format{i}(v, obj)")
        elif _same_serialize(field, fields.Boolean):
            lines.append(f"        out[{key!r}] = v if v is True or v is False "
                         f"else format{i}(v, obj)")
        else:
            lines += [f"        v = format{i}(v, obj)",
                      "        if v is not missing:",
                      f"            out[{key!r}] = v"]
    lines.append("    return out")

    def loop(obj) -> dict:
        out = {}
        for key, getter, formatter, default in plan:
            if getter is None:
                value = None
            else:
                value = getter(obj)
                if value is missing:
                    value = default() if callable(default) else default
                    if value is missing:
                        continue
            value = formatter(value, obj)
            if value is not missing:
                out[key] = value
        return out

    namespace["loop"] = loop
    exec("\n".join(lines), namespace)  # noqa: S102 - source made above from field names
    return namespace["dump"]


def compile_dump(schema: Schema) -> Callable:
    """``obj -> data`` equal to ``schema.dump(obj)`` (a list of objects if ``schema.many``)."""
    one = compile_object(schema)
    if schema.many:
        return lambda objs: one(objs) if objs is None else [one(obj) for obj in objs]
    return one


def compiled(schema: Schema) -> Schema:
    """``schema`` itself, its ``dump`` the compiled one: where flask-smorest dumps the answer
    (``@blp.response(200, compiled(ThingOut()))``) and its fields still document it."""
    dump = compile_dump(schema)
    schema.dump = lambda obj, *, many=None: (
        dump(obj) if many is None else type(schema).dump(schema, obj, many=many))
    return schema
