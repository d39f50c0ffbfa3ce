"""Response bodies are written by orjson and are the bytes Flask's own provider writes."""

import dataclasses
import datetime
import decimal
import json
import uuid

import pytest
from flask.json.provider import DefaultJSONProvider
from helpers import LAMP
from markupsafe import Markup

from thingbridge.api.json_provider import JSONProvider


@dataclasses.dataclass
class Point:
    x: int
    label: str


BODIES = [
    {"b": 1, "a": {"d": [1, 2.5, None, True, False], "c": "text"}, "": -0.0},
    [{"z": "x" * 1000, "y": list(range(50))}, [], {}],
    {"when": datetime.datetime(2026, 12, 6, 16, 30, 1, 123456), "day": datetime.date(2026, 1, 2)},
    {"id": uuid.UUID(int=7), "amount": decimal.Decimal("1.10"), "point": Point(3, "p")},
    {"html": Markup("<b>x</b>"), "tuple": (1, "two")},
    {"unicode": "Küche °C \u2603 \U0001f600"},  # Flask escapes these: its encoder writes them
    {"control": "tab\t nul\x00 del\x7f end"},  # DEL is ASCII, and Flask escapes it too
    {"huge": 2**70, "negative": -(2**63)},  # beyond orjson's 64 bits: Flask's encoder
    {1: "integer key"},  # Flask's encoder turns it into "1"
    {"floats": [0.1, 21.5, 1e16, 1.5e300, 123456789.125, -3.0]},
]


@pytest.mark.parametrize("body", BODIES)
def test_bodies_are_the_bytes_flask_writes(flask_app, body):
    assert isinstance(flask_app.json, JSONProvider)
    with flask_app.app_context():
        ours = flask_app.json.response(body)
        flasks = DefaultJSONProvider(flask_app).response(body)
    assert ours.get_data() == flasks.get_data()
    assert ours.mimetype == flasks.mimetype == "application/json"


def test_an_api_answer_is_sorted_compact_ascii_json(api):
    body = {**LAMP, "name": "Lampe \u00fcber dem Tisch\x7f"}
    assert api.post("/api/v1/things", json=LAMP).status_code == 201
    assert api.post("/api/v1/things", json=body).status_code == 201
    for path in ("/api/v1/things?expand=components", "/api/v1/things"):
        raw = api.get(path).get_data()
        assert raw == (json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
                       + "\n").encode()
