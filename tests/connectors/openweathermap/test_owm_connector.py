"""OpenWeatherMap plugin against its simulator over real HTTP, and the pure mapping on real
recorded responses."""

import json
import re
from pathlib import Path

import pytest
import requests
from helpers import OWM_KEY
from marshmallow import ValidationError

from thingbridge.contract import ClientContext, ConfigError, TransientError
from thingbridge.localserver import serving
from thingbridge_openweathermap.connector import OpenWeatherMapConnector
from thingbridge_openweathermap.mapping import map_weather
from thingbridge_openweathermap.schemas import ClientConfig
from thingbridge_openweathermap.simulator import create_simulator

SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "provider-samples" / "owm"
ID = re.compile(r"^[a-zA-Z0-9\-_]{1,200}$")


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sim(clock):
    with serving(create_simulator(clock=clock)) as server:
        yield server.url


def connector(url, timeout=3.0):
    return OpenWeatherMapConnector(base_url=url, timeout=timeout)


def ctx(**client_config):
    return ClientContext({"app_key": OWM_KEY}, client_config)


def props(thing):
    return {(c.id, p.id): p for c in thing.components for p in c.properties}


@pytest.mark.parametrize("sample", ["programmatordev/weather_current_success.json",
                                    "programmatordev/weather_current_rain.json",
                                    "programmatordev/weather_current_snow.json",
                                    "prominence/current-weather-minsk.json",
                                    "pyowm/current_weather_london_2013.json"])
def test_mapping_of_real_responses(sample):
    payload = json.loads((SAMPLES / sample).read_text())
    [thing] = map_weather(payload, {"lat": 52.52, "lon": 13.405})
    assert thing.connector_thing_id == "coord:52.5200,13.4050"
    found = props(thing)
    assert found[("temperature", "temperature")].value == format(payload["main"]["temp"], "g")
    assert found[("temperature", "temperature")].unit == "°C"
    assert found[("humidity", "humidity")].unit == "%"
    for (cid, pid), prop in found.items():
        assert ID.match(cid) and ID.match(pid) and isinstance(prop.value, str)
        if prop.type == "NUMBER":
            float(prop.value)
    assert thing.main_component_id in {c.id for c in thing.components}


@pytest.mark.parametrize("sample, missing", [
    ("current-weather-minsk-missing-gust.json", "gust"),
    ("current-weather-minsk-missing-wind-direction.json", "direction")])
def test_missing_wind_fields_are_omitted_not_invented(sample, missing):
    payload = json.loads((SAMPLES / "prominence" / sample).read_text())
    [thing] = map_weather(payload, {"city": "Minsk"})
    assert ("wind", missing) not in props(thing)
    assert ("wind", "speed") in props(thing)
    assert thing.connector_thing_id == "city:minsk"


def test_fetch_and_map_from_simulator(sim):
    plugin = connector(sim)
    [thing] = plugin.map_things(plugin.fetch(ctx(city="Berlin")), {"city": "Berlin"})
    assert thing.name == "Weather Berlin" and thing.status == "AVAILABLE"
    assert {c.id for c in thing.components} == {"temperature", "humidity", "pressure", "wind",
                                                "conditions"}


def test_readings_stable_within_a_bucket_and_changing_across(sim, clock):
    plugin = connector(sim)
    first = plugin.fetch(ctx(lat=48.1, lon=11.6))
    clock.now += 60
    assert plugin.fetch(ctx(lat=48.1, lon=11.6))["main"] == first["main"]
    clock.now += 3 * 600
    assert plugin.fetch(ctx(lat=48.1, lon=11.6))["main"] != first["main"]


def test_check_rejects_a_bad_key(sim):
    connector(sim).check({"app_key": OWM_KEY})
    with pytest.raises(ConfigError, match="invalid OpenWeatherMap app key"):
        connector(sim).check({"app_key": "not-a-key"})


def test_unknown_city_is_config_error(sim):
    with pytest.raises(ConfigError, match="location not found"):
        connector(sim).fetch(ctx(city="Atlantis"))


def test_server_error_and_rate_limit_are_transient(sim):
    requests.post(f"{sim}/_sim/control", json={"mode": "error_500"}, timeout=5)
    with pytest.raises(TransientError):
        connector(sim).fetch(ctx(city="Berlin"))
    requests.post(f"{sim}/_sim/control", json={"mode": "rate_limited"}, timeout=5)
    with pytest.raises(TransientError) as info:
        connector(sim).fetch(ctx(city="Berlin"))
    assert info.value.retry_after == 60


def test_timeout_is_transient(sim):
    requests.post(f"{sim}/_sim/control", json={"mode": "timeout", "timeout_seconds": 1.5},
                  timeout=5)
    with pytest.raises(TransientError, match="unreachable"):
        connector(sim, timeout=0.5).fetch(ctx(city="Berlin"))


def test_simulator_enforces_per_key_budget(clock):
    with serving(create_simulator(clock=clock, rate_limit_per_minute=2)) as server:
        plugin = connector(server.url)
        plugin.fetch(ctx(city="London"))
        plugin.fetch(ctx(city="London"))
        with pytest.raises(TransientError):
            plugin.fetch(ctx(city="London"))
        clock.now += 60
        plugin.fetch(ctx(city="London"))


@pytest.mark.parametrize("config, needle", [
    ({}, "location is required"), ({"city": "Berlin", "lat": 1, "lon": 2}, "not both"),
    ({"lat": 95, "lon": 10}, "lat"), ({"lat": 10}, "go together")])
def test_client_config_validation(config, needle):
    with pytest.raises(ValidationError) as info:
        ClientConfig().load(config)
    assert needle in json.dumps(info.value.normalized_messages())
