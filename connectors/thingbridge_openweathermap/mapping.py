"""Pure mapping: a current-weather payload -> one thing for the client's location.

Fields the provider leaves out (gust in calm air, wind direction, rain when dry) are left out of
the thing too: the host removes a property that a later poll no longer reports.
"""

from __future__ import annotations

from thingbridge.connectors.contract import ComponentSpec, PropertySpec, ThingSpec, TransientError

# (payload key, property id, name, unit, semantic type)
Field = tuple[str, str, str, str, str]

TEMPERATURE: list[Field] = [
    ("temp", "temperature", "Temperature", "°C", "TEMPERATURE"),
    ("feels_like", "feels_like", "Feels like", "°C", "TEMPERATURE"),
    ("temp_min", "temp_min", "Minimum", "°C", "TEMPERATURE"),
    ("temp_max", "temp_max", "Maximum", "°C", "TEMPERATURE"),
]
WIND: list[Field] = [
    ("speed", "speed", "Speed", "m/s", "WIND_SPEED"),
    ("deg", "direction", "Direction", "°", "WIND_DIRECTION"),
    ("gust", "gust", "Gust", "m/s", "WIND_SPEED"),
]
RAIN: list[Field] = [("1h", "rain_1h", "Rain, last hour", "mm", "PRECIPITATION"),
                     ("3h", "rain_3h", "Rain, last 3 hours", "mm", "PRECIPITATION")]
SNOW: list[Field] = [("1h", "snow_1h", "Snow, last hour", "mm", "PRECIPITATION"),
                     ("3h", "snow_3h", "Snow, last 3 hours", "mm", "PRECIPITATION")]


def _coord(value) -> str:
    # + 0.0 folds -0.0 into 0.0, so "lon": -0.0 and 0 name the same place.
    return f"{float(value) + 0.0:.4f}"


def location_id(client_config: dict) -> str:
    """Stable per configured location (the provider's city id may change between calls)."""
    if client_config.get("city"):
        return "city:" + " ".join(client_config["city"].split()).lower()
    return f"coord:{_coord(client_config['lat'])},{_coord(client_config['lon'])}"


def number(value) -> str:
    """A reading as the thing model's string: shortest exact form, no float noise, no ".0"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _props(source: dict, fields: list[Field]) -> list[PropertySpec]:
    return [PropertySpec(id=pid, name=name, value=number(source[key]), type="NUMBER", unit=unit,
                         property_type=ptype)
            for key, pid, name, unit, ptype in fields if source.get(key) is not None]


def _text(pid: str, name: str, value) -> list[PropertySpec]:
    return [PropertySpec(id=pid, name=name, type="STRING", value=str(value))] if value else []


def _component(cid: str, name: str, ctype: str, props: list[PropertySpec]) -> ComponentSpec:
    return ComponentSpec(id=cid, name=name, component_type=ctype, properties=props)


def map_weather(payload: dict, client_config: dict) -> list[ThingSpec]:
    main = payload.get("main")
    if not isinstance(main, dict) or main.get("temp") is None:
        # A 200 without readings is a provider hiccup, not a reason to empty the thing.
        raise TransientError("OpenWeatherMap answered without current readings")
    weather = payload.get("weather") or [{}]
    conditions = weather[0] if isinstance(weather[0], dict) else {}
    components = [c for c in [
        _component("temperature", "Temperature", "TEMPERATURE_SENSOR", _props(main, TEMPERATURE)),
        _component("humidity", "Humidity", "HUMIDITY_SENSOR", _props(main, [
            ("humidity", "humidity", "Humidity", "%", "HUMIDITY")])),
        _component("pressure", "Pressure", "PRESSURE_SENSOR", _props(main, [
            ("pressure", "pressure", "Pressure", "hPa", "PRESSURE")])),
        _component("wind", "Wind", "WIND_SENSOR", _props(payload.get("wind") or {}, WIND)),
        _component("conditions", "Conditions", "WEATHER", [
            *_props(payload.get("clouds") or {}, [
                ("all", "cloudiness", "Cloudiness", "%", "CLOUDINESS")]),
            *_props(payload, [("visibility", "visibility", "Visibility", "m", "DISTANCE")]),
            *_text("condition", "Condition", conditions.get("main")),
            *_text("description", "Description", conditions.get("description"))]),
        _component("precipitation", "Precipitation", "PRECIPITATION_SENSOR", [
            *_props(payload.get("rain") or {}, RAIN), *_props(payload.get("snow") or {}, SNOW)]),
    ] if c.properties]
    return [ThingSpec(connector_thing_id=location_id(client_config),
                      name=f"Weather {_place(payload, client_config)}",
                      manufacturer="OpenWeatherMap", display_type="WEATHER_STATION",
                      main_component_id="temperature", components=components,
                      status="AVAILABLE", attributes=_attributes(payload, client_config))]


def _place(payload: dict, client_config: dict) -> str:
    if payload.get("name"):
        return str(payload["name"])
    if client_config.get("city"):
        return client_config["city"].strip()
    return f"{_coord(client_config['lat'])}, {_coord(client_config['lon'])}"


def _attributes(payload: dict, client_config: dict) -> dict[str, str]:
    coord = payload.get("coord") or {}
    found = {
        "country": (payload.get("sys") or {}).get("country"),
        # 0 is what the provider sends when it has no city for the point.
        "city_id": payload.get("id") or None,
        "lat": coord.get("lat", client_config.get("lat")),
        "lon": coord.get("lon", client_config.get("lon")),
    }
    return {key: number(value) for key, value in found.items() if value not in (None, "")}
