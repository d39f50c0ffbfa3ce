"""The connector contract, checked over every registered plugin (third-party ones included)."""

import importlib

import marshmallow as ma
import pytest
import requests

from thingbridge.connectors.contract import Connector, OAuth2Endpoints, load_connectors
from thingbridge.localserver import serving

PLUGINS = load_connectors()


def test_builtins_register_like_third_parties():
    assert {"netatmo", "openweathermap"} <= set(PLUGINS)


@pytest.mark.parametrize("type_id", sorted(PLUGINS))
def test_plugin_declares_the_contract(type_id):
    cls = PLUGINS[type_id]
    assert issubclass(cls, Connector) and cls.type_id == type_id
    assert cls.name and cls.description and cls.default_base_url.startswith("https://")
    assert cls.poll_interval > 0 and cls.auth_kind in ("api_key", "oauth2")
    for schema in (cls.instance_schema, cls.client_schema):
        assert issubclass(schema, ma.Schema)
    # The published samples are valid configurations.
    cls.client_schema().load(cls.sample_client_configuration)
    if cls.auth_kind == "oauth2":
        cls.instance_schema().load(cls.sample_instance_configuration)
        endpoints = cls(base_url="https://provider.example").oauth2_endpoints()
        assert isinstance(endpoints, OAuth2Endpoints) and endpoints.scopes
        assert endpoints.token_url.startswith("https://provider.example/")
    else:
        assert cls(base_url="https://x.example").oauth2_endpoints() is None
        with pytest.raises(ma.ValidationError):
            cls.instance_schema().load({})
    for method in ("check", "fetch", "map_things"):
        assert getattr(cls, method) is not getattr(Connector, method), method


@pytest.mark.parametrize("type_id", sorted(PLUGINS))
def test_plugin_ships_a_wsgi_simulator(type_id):
    module, factory = PLUGINS[type_id].simulator.split(":")
    app = getattr(importlib.import_module(module), factory)()
    # Served over real HTTP, it answers the simulators' test-control surface.
    with serving(app) as server:
        assert requests.post(f"{server.url}/_sim/reset", timeout=5).status_code == 200
        stats = requests.get(f"{server.url}/_sim/stats", timeout=5)
        assert stats.status_code == 200 and isinstance(stats.json(), dict)
