"""Configuration schemas and the plugin's declarations."""

from importlib import import_module
from importlib.metadata import entry_points

import pytest
from helpers import OWM_KEY
from marshmallow import ValidationError

from thingbridge.connectors.contract import ENTRY_POINT_GROUP, ClientContext
from thingbridge.localserver import serving
from thingbridge_openweathermap.connector import OpenWeatherMapConnector
from thingbridge_openweathermap.schemas import ClientConfig, InstanceConfig


def errors(schema, config) -> dict:
    with pytest.raises(ValidationError) as info:
        schema().load(config)
    return info.value.normalized_messages()


BOTH = {"_schema": ["give either lat/lon or city, not both"]}


@pytest.mark.parametrize("config, expected", [
    ({}, {"_schema": ["a location is required: lat and lon, or city"]}),
    ({"city": "Berlin", "lat": 1, "lon": 2}, BOTH),
    ({"city": "Berlin", "lat": 1}, BOTH),
    ({"lat": 10}, {"lon": ["lat and lon go together: lon is missing"]}),
    ({"lon": 10}, {"lat": ["lat and lon go together: lat is missing"]}),
    ({"lat": 95, "lon": 10},
     {"lat": ["Must be greater than or equal to -90 and less than or equal to 90."]}),
    ({"lat": 10, "lon": -180.5},
     {"lon": ["Must be greater than or equal to -180 and less than or equal to 180."]}),
    ({"lat": "nan", "lon": 1},
     {"lat": ["Special numeric values (nan or infinity) are not permitted."]}),
    ({"lat": "north", "lon": 1}, {"lat": ["Not a valid number."]}),
    ({"city": "   "}, {"city": ["must not be blank"]}),
    ({"city": "Berlin", "zip": "10115"}, {"zip": ["Unknown field."]}),
])
def test_client_config_errors_are_specific(config, expected):
    assert errors(ClientConfig, config) == expected


@pytest.mark.parametrize("config, loaded", [
    ({"lat": "52.52", "lon": 13.405}, {"lat": 52.52, "lon": 13.405}),
    ({"lat": -90, "lon": 180}, {"lat": -90.0, "lon": 180.0}),
    ({"city": "Berlin,DE"}, {"city": "Berlin,DE"})])
def test_client_config_accepts_either_form(config, loaded):
    assert ClientConfig().load(config) == loaded


def test_instance_config_requires_an_app_key():
    assert errors(InstanceConfig, {}) == {"app_key": ["Missing data for required field."]}
    assert errors(InstanceConfig, {"app_key": 42}) == {"app_key": ["Not a valid string."]}
    assert "app_key" in errors(InstanceConfig, {"app_key": " "})


def test_declarations():
    cls = OpenWeatherMapConnector
    assert (cls.type_id, cls.name, cls.auth_kind) == ("openweathermap", "OpenWeatherMap",
                                                      "api_key")
    assert cls.default_base_url == "https://api.openweathermap.org"
    assert cls.poll_interval == 600 and cls.rate_limit_per_minute == 60
    assert cls.description and cls.logo.startswith("https://")
    assert cls().base_url == "https://api.openweathermap.org"
    assert cls().oauth2_endpoints() is None


def test_samples_are_valid_configurations():
    cls = OpenWeatherMapConnector
    assert cls.instance_schema().load(cls.sample_instance_configuration) == \
        cls.sample_instance_configuration
    assert cls.client_schema().load(cls.sample_client_configuration) == \
        cls.sample_client_configuration


def test_registered_as_entry_point_with_a_simulator_factory():
    [ep] = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "openweathermap"]
    assert ep.load() is OpenWeatherMapConnector
    module, _, factory = OpenWeatherMapConnector.simulator.partition(":")
    app = getattr(import_module(module), factory)()
    # The plugin, pointed at its simulator served over HTTP, reads a city into a thing.
    with serving(app) as server:
        plugin = OpenWeatherMapConnector(base_url=server.url)
        context = ClientContext({"app_key": OWM_KEY}, {"city": "Berlin"})
        [thing] = plugin.map_things(plugin.fetch(context), {"city": "Berlin"})
    assert thing.connector_thing_id == "city:berlin"
