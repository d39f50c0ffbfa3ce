"""The Netatmo connector plugin: OAuth declarations, polling calls and the thermostat action."""

from __future__ import annotations

from thingbridge.connectors.contract import (
    ActionError,
    ClientContext,
    Connector,
    OAuth2Endpoints,
    ThingSpec,
)
from thingbridge_netatmo import client
from thingbridge_netatmo.mapping import map_payload
from thingbridge_netatmo.schemas import ClientConfig, InstanceConfig

MODES = ("manual", "max", "home")


class NetatmoConnector(Connector):
    type_id = "netatmo"
    name = "Netatmo"
    description = ("Netatmo weather stations (station and modules: temperature, humidity, CO2, "
                   "pressure, noise, wind, rain, battery) and thermostat rooms (measured "
                   "temperature, setpoint, mode; action setRoomThermPoint). Needs the end "
                   "user's consent in a browser.")
    logo = "https://www.netatmo.com/images/logo-netatmo.svg"
    instance_schema = InstanceConfig
    client_schema = ClientConfig
    sample_instance_configuration = {"client_id": "5d8f0a1b2c3d4e5f6a7b8c9d",
                                     "client_secret": "your-netatmo-client-secret",
                                     "origin_callback_uri": "https://app.example.com/connected"}
    sample_client_configuration: dict = {}
    auth_kind = "oauth2"
    default_base_url = "https://api.netatmo.com"
    poll_interval = 300  # stations upload every ~10 minutes; thermostats change faster
    # Netatmo allows 500 requests per hour per user and 2000 per 10 s per app; one poll is
    # three requests, so an app-wide 600 per minute stays well inside the app limit.
    rate_limit_per_minute = 600
    simulator = "thingbridge_netatmo.simulator:create_simulator"

    def oauth2_endpoints(self) -> OAuth2Endpoints:
        return OAuth2Endpoints(authorize_url=f"{self.base_url}/oauth2/authorize",
                               token_url=f"{self.base_url}/oauth2/token",
                               scopes=("read_station", "read_thermostat", "write_thermostat"))

    def check(self, instance_config: dict) -> None:
        client.check_credentials(self.session, self.oauth2_endpoints().token_url,
                                 instance_config["client_id"], instance_config["client_secret"],
                                 self.timeout)

    def _get(self, path: str, token: str, **params) -> dict:
        return client.call(self.session, "GET", f"{self.base_url}/api/{path}", token,
                           self.timeout, params=params or None)

    def fetch(self, ctx: ClientContext) -> dict:
        token = ctx.access_token
        stations = self._get("getstationsdata", token)
        homes = self._get("homesdata", token)
        homestatus = {home["id"]: self._get("homestatus", token, home_id=home["id"])
                      for home in (homes.get("body") or {}).get("homes", [])}
        return {"stations": stations, "homes": homes, "homestatus": homestatus}

    def map_things(self, payload: dict, client_config: dict) -> list[ThingSpec]:
        return map_payload(payload)

    def perform_action(self, ctx: ClientContext, connector_thing_id: str, component_id: str,
                       action_id: str, parameters: dict[str, str]) -> None:
        if action_id != "setRoomThermPoint" or not connector_thing_id.startswith("room:"):
            raise ActionError(f"unsupported action {action_id!r} on {connector_thing_id!r}")
        # Room ids are numbers; a home id could hold a colon: split at the last.
        home_id, room_id = connector_thing_id.removeprefix("room:").rsplit(":", 1)
        data = {"home_id": home_id, "room_id": room_id, **_checked(parameters)}
        client.call(self.session, "POST", f"{self.base_url}/api/setroomthermpoint",
                    ctx.access_token, self.timeout, action=True, data=data)


def _checked(parameters: dict[str, str]) -> dict:
    mode = parameters.get("mode")
    if mode not in MODES:
        raise ActionError(f"mode must be one of {', '.join(MODES)}")
    out = {"mode": mode}
    for name in ("temp", "endtime"):
        if parameters.get(name) not in (None, ""):
            try:
                out[name] = float(parameters[name]) if name == "temp" else int(
                    float(parameters[name]))
            except ValueError as exc:
                raise ActionError(f"{name} must be a number") from exc
    if mode == "manual" and "temp" not in out:
        raise ActionError("temp is required when mode is manual")
    if "temp" in out and not 7 <= out["temp"] <= 30:
        raise ActionError("temp must be between 7 and 30 °C")
    return out
