"""The OpenWeatherMap connector plugin: declarations plus the contract's four calls."""

from __future__ import annotations

from thingbridge.connectors.contract import ClientContext, Connector, ThingSpec
from thingbridge_openweathermap import client
from thingbridge_openweathermap.mapping import map_weather
from thingbridge_openweathermap.schemas import ClientConfig, InstanceConfig

# Any valid coordinate proves the key; Greenwich is as good as any.
CHECK_LOCATION = {"lat": 51.4779, "lon": 0.0}


class OpenWeatherMapConnector(Connector):
    type_id = "openweathermap"
    name = "OpenWeatherMap"
    description = ("Current weather for one location per client (lat/lon or a city name): "
                   "temperature, humidity, pressure, wind, clouds, conditions and precipitation, "
                   "in metric units, refreshed every 10 minutes.")
    logo = "https://openweathermap.org/themes/openweathermap/assets/img/logo_white_cropped.png"
    instance_schema = InstanceConfig
    client_schema = ClientConfig
    # The key's shape is the real one (32 hex characters); the simulator accepts it.
    sample_instance_configuration = {"app_key": "3f9a1c2e7b8d4f60a5e2c9b1d7f3e8a4"}
    sample_client_configuration = {"lat": 52.52, "lon": 13.405}  # or {"city": "Berlin,DE"}
    # A location key this connector does not read (zip, q, id) would poll a place the app did
    # not mean, so it is refused rather than ignored.
    strict_configuration = ("client",)
    auth_kind = "api_key"
    default_base_url = "https://api.openweathermap.org"
    poll_interval = 600  # current weather updates about every 10 minutes
    rate_limit_per_minute = 60  # the free plan's per-key budget; the host enforces it
    simulator = "thingbridge_openweathermap.simulator:create_simulator"

    def check(self, instance_config: dict) -> None:
        client.current_weather(self.session, self.base_url, instance_config["app_key"],
                               CHECK_LOCATION, self.timeout)

    def fetch(self, ctx: ClientContext) -> dict:
        return client.current_weather(self.session, self.base_url,
                                      ctx.instance_config["app_key"],
                                      client.location_params(ctx.client_config), self.timeout)

    def map_things(self, payload: dict, client_config: dict) -> list[ThingSpec]:
        return map_weather(payload, client_config)
