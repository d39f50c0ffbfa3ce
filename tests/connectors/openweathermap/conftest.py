"""Fixtures of the OpenWeatherMap tests: a simulator with a hand-driven clock, served over real
HTTP, and a plugin pointed at it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from flows import sim_stats
from helpers import OWM_KEY

from thingbridge.connectors.contract import ClientContext
from thingbridge.localserver import serving
from thingbridge_openweathermap.connector import OpenWeatherMapConnector
from thingbridge_openweathermap.simulator import create_simulator

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "openweathermap"


START = 1_800_000_015.0  # 15 s into a minute and into a 10-minute reading bucket


class Clock:
    """Epoch seconds a test moves by hand."""

    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def _shared():
    # One server per module, reset per test: stopping a server costs half a second.
    clock = Clock()
    with serving(create_simulator(clock=clock)) as server:
        yield clock, server.url


@pytest.fixture
def clock(_shared) -> Clock:
    _shared[0].now = START
    return _shared[0]


@pytest.fixture
def sim(_shared, clock):
    """Base URL of a freshly reset simulator (unlimited budget) on the test's clock."""
    requests.post(f"{_shared[1]}/_sim/reset", timeout=5).raise_for_status()
    return _shared[1]


@pytest.fixture
def plugin(sim):
    """Build the plugin against the simulator; ``timeout`` is the connector's HTTP timeout."""
    def build(timeout: float = 3.0, url: str | None = None) -> OpenWeatherMapConnector:
        return OpenWeatherMapConnector(base_url=url or sim, timeout=timeout)
    return build


@pytest.fixture
def control(sim):
    """POST the test control API; returns the response."""
    def post(**body) -> requests.Response:
        return requests.post(f"{sim}/_sim/control", json=body, timeout=5)
    return post


@pytest.fixture
def stats(sim):
    return lambda: sim_stats(sim)


@pytest.fixture
def ctx():
    def build(app_key: str = OWM_KEY, **client_config) -> ClientContext:
        return ClientContext({"app_key": app_key}, client_config)
    return build


@pytest.fixture
def sample():
    return lambda name: json.loads((SAMPLES / name).read_text(encoding="utf-8"))
