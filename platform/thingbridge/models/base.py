"""Base model and small field helpers shared by every table."""

from __future__ import annotations

import json
import uuid

from peewee import CharField, DateTimeField, Model, TextField

from thingbridge.db import db, utcnow


def new_id() -> str:
    return str(uuid.uuid4())


# Empty collections are the most common stored values (no attributes, no capabilities): made
# directly, without the JSON parser's call.
_EMPTY = {"[]": list, "{}": dict}


class JSONField(TextField):
    """Plain JSON text; portable across SQLite and PostgreSQL."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def python_value(self, value):
        if value is None:
            return None
        empty = _EMPTY.get(value)
        return empty() if empty is not None else json.loads(value)


def UUIDKey():  # noqa: N802 - reads like a field class at the call site
    return CharField(max_length=36, primary_key=True, default=new_id)


class BaseModel(Model):
    created_at = DateTimeField(default=utcnow)

    class Meta:
        database = db
        legacy_table_names = False
