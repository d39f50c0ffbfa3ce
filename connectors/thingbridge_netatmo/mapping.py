"""Pure mapping: Netatmo payloads -> things (stations, modules, thermostat rooms)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from thingbridge.connectors.contract import (
    ActionParameterSpec,
    ActionSpec,
    ComponentSpec,
    PropertySpec,
    ThingSpec,
    TransientError,
)


@dataclass(frozen=True)
class Reading:
    """How one provider field becomes a property (Home Assistant's entity descriptions)."""

    key: str            # the field in the provider's payload
    component: str
    property_id: str
    name: str
    unit: str
    property_type: str  # semantic type
    kind: str = "NUMBER"

    def spec(self, source: dict) -> PropertySpec:
        """The property; its value None (unknown: the stored one stays) if ``source`` has none."""
        value = source.get(self.key)
        return PropertySpec(id=self.property_id, name=self.name,
                            value=None if value is None else _value(value), unit=self.unit,
                            type=self.kind, property_type=self.property_type)


MEASUREMENTS = [  # a station's or module's dashboard_data
    Reading("Temperature", "temperature", "temperature", "Temperature", "°C", "TEMPERATURE"),
    Reading("min_temp", "temperature", "min_temp", "Minimum today", "°C", "TEMPERATURE"),
    Reading("max_temp", "temperature", "max_temp", "Maximum today", "°C", "TEMPERATURE"),
    Reading("Humidity", "humidity", "humidity", "Humidity", "%", "HUMIDITY"),
    Reading("CO2", "co2", "co2", "CO2", "ppm", "CO2"),
    Reading("Pressure", "pressure", "pressure", "Pressure", "mbar", "PRESSURE"),
    Reading("AbsolutePressure", "pressure", "absolute_pressure", "Absolute pressure", "mbar",
            "PRESSURE"),
    Reading("Noise", "noise", "noise", "Noise", "dB", "NOISE"),
    Reading("WindStrength", "wind", "strength", "Wind strength", "km/h", "WIND_SPEED"),
    Reading("WindAngle", "wind", "angle", "Wind angle", "°", "WIND_DIRECTION"),
    Reading("GustStrength", "wind", "gust_strength", "Gust strength", "km/h", "WIND_SPEED"),
    Reading("GustAngle", "wind", "gust_angle", "Gust angle", "°", "WIND_DIRECTION"),
    Reading("Rain", "rain", "rain", "Rain", "mm", "RAIN"),
    Reading("sum_rain_1", "rain", "sum_rain_1", "Rain last hour", "mm", "RAIN"),
    Reading("sum_rain_24", "rain", "sum_rain_24", "Rain today", "mm", "RAIN"),
]
BATTERY = [  # a module's own fields
    Reading("battery_percent", "battery", "percent", "Battery", "%", "BATTERY"),
    Reading("battery_vp", "battery", "voltage", "Battery voltage", "mV", "BATTERY"),
]
THERMOSTAT = [  # a room in homestatus
    Reading("therm_measured_temperature", "thermostat", "measured_temperature",
            "Measured temperature", "°C", "TEMPERATURE"),
    Reading("therm_setpoint_temperature", "thermostat", "setpoint_temperature", "Setpoint",
            "°C", "TEMPERATURE"),
    Reading("therm_setpoint_mode", "thermostat", "setpoint_mode", "Setpoint mode", "", "MODE",
            "STRING"),
]
# Module types that report a room's thermostat state (thermostat, valve, OpenTherm, Smarther).
THERMOSTAT_MODULES = {"NATherm1", "NRV", "OTM", "BNS"}
COMPONENT_NAMES = {"temperature": "Temperature", "humidity": "Humidity", "co2": "CO2",
                   "pressure": "Pressure", "noise": "Noise", "wind": "Wind", "rain": "Rain",
                   "battery": "Battery"}
# What a station or module says it measures (``data_type``) -> its sensor component.
DATA_TYPES = {name: cid for cid, name in COMPONENT_NAMES.items() if cid != "battery"}
DISPLAY_TYPES = {"NAMain": "WEATHER_STATION", "NAModule1": "OUTDOOR_MODULE",
                 "NAModule2": "WIND_GAUGE", "NAModule3": "RAIN_GAUGE",
                 "NAModule4": "INDOOR_MODULE"}
SET_ROOM_THERMPOINT = ActionSpec(id="setRoomThermPoint", parameters=[
    ActionParameterSpec("mode", "STRING", required=True),
    ActionParameterSpec("temp", "NUMBER"),
    ActionParameterSpec("endtime", "NUMBER")])


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return format(value, "g") if isinstance(value, float) else str(value)


def _safe_id(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9\-_]", "-", text)[:200] or "unknown"


def _device_thing(device: dict, station_name: str) -> ThingSpec:
    data = device.get("dashboard_data")
    # A module out of reach sends no readings, only what it measures (``data_type``): its
    # sensors stay, their readings unknown (the stored ones kept), rather than being deleted
    # with the apps' references to them and made again when it is back.
    declared = set() if data else {DATA_TYPES.get(kind) for kind in _listed_text(device)}
    components: dict[str, ComponentSpec] = {}
    for reading in MEASUREMENTS:
        if (data and data.get(reading.key) is not None) or reading.component in declared:
            cid = reading.component
            component = components.setdefault(cid, ComponentSpec(
                id=cid, name=COMPONENT_NAMES[cid], component_type=f"{cid.upper()}_SENSOR"))
            component.properties.append(reading.spec(data or {}))
    battery = [reading.spec(device) for reading in BATTERY if device.get(reading.key) is not None]
    if battery:
        components["battery"] = ComponentSpec(id="battery", name="Battery",
                                              component_type="BATTERY", properties=battery)
    reachable = device.get("reachable", True) and data is not None
    connectivity = ComponentSpec(id="status", name="Status", component_type="CONNECTIVITY",
                                 properties=[PropertySpec(id="reachable", name="Reachable",
                                                          type="BOOLEAN",
                                                          value=_value(bool(reachable)))])
    ordered = list(components.values()) + [connectivity]
    name = device.get("module_name") or device.get("type", "module")
    return ThingSpec(connector_thing_id=device["_id"], name=f"{station_name} {name}".strip(),
                     manufacturer="Netatmo",
                     display_type=DISPLAY_TYPES.get(device.get("type"), "SENSOR"),
                     main_component_id=ordered[0].id, components=ordered,
                     status="AVAILABLE" if reachable else "UNAVAILABLE",
                     attributes={"type": str(device.get("type", "")),
                                 "firmware": _value(device.get("firmware", ""))})


def _listed_text(device: dict) -> list[str]:
    kinds = device.get("data_type")
    return [kind for kind in kinds if isinstance(kind, str)] if isinstance(kinds, list) else []


def _listed(owner, key: str, where: str = "body") -> list:
    """``owner[key]``: a list in every real answer, empty where there is none. An answer
    without it says nothing of the devices, and mapping it as none would delete their things
    (and give them new ids when they come back): a transient failure instead."""
    listed = owner.get(key) if isinstance(owner, dict) else None
    if not isinstance(listed, list):
        raise TransientError(f"Netatmo answered without its list of {key} ({where})")
    return listed


def station_things(stations: dict) -> list[ThingSpec]:
    things: dict[str, ThingSpec] = {}
    for device in _listed(stations.get("body"), "devices"):
        station_name = device.get("station_name", "")
        for item in [device, *_listed(device, "modules", "a station")]:
            # A module moved between stations can be listed under both; one thing per device.
            things.setdefault(item["_id"], _device_thing(item, station_name))
    return list(things.values())


def room_things(homes: dict, homestatus: dict) -> list[ThingSpec]:
    things = []
    for home in _listed(homes.get("body"), "homes"):
        status = ((homestatus.get(home["id"]) or {}).get("body") or {}).get("home") or {}
        rooms = {room["id"]: room for room in status.get("rooms") or []}
        heated = {m.get("room_id") for m in home.get("modules") or []
                  if m.get("type") in THERMOSTAT_MODULES}
        for room in _listed(home, "rooms", "a home"):
            state = rooms.get(room["id"])
            if state is not None:
                reachable = state.get("reachable", True)
            elif room["id"] in heated:
                # A room with a thermostat but no status: the home's did not come (its relay
                # offline: an "errors" list and no rooms). It stays, unreachable, with its last
                # readings.
                state, reachable = {}, False
            else:
                continue  # no thermostat in this room
            # A reading the status leaves out (an unreachable valve's) keeps its last value.
            props = [reading.spec(state) for reading in THERMOSTAT]
            things.append(ThingSpec(
                connector_thing_id=f"room:{home['id']}:{room['id']}",
                name=f"{home.get('name', '')} {room.get('name', room['id'])}".strip(),
                manufacturer="Netatmo", display_type="THERMOSTAT",
                main_component_id="thermostat",
                components=[ComponentSpec(id="thermostat", name="Thermostat",
                                          component_type="THERMOSTAT",
                                          capabilities=["SETPOINT"], properties=props,
                                          actions=[SET_ROOM_THERMPOINT])],
                status="AVAILABLE" if reachable else "UNAVAILABLE",
                attributes={"home_id": home["id"], "room_id": room["id"],
                            "room_type": str(room.get("type", ""))}))
    return things


def map_payload(payload: dict) -> list[ThingSpec]:
    return (station_things(payload.get("stations") or {})
            + room_things(payload.get("homes") or {}, payload.get("homestatus") or {}))
