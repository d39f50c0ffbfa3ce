"""Pure mapping: a current-weather payload -> one thing for the client's location."""

from __future__ import annotations

from thingbridge.contract import ComponentSpec, PropertySpec, ThingSpec


def location_id(client_config: dict) -> str:
    """Stable per configured location (the provider's city id may change between calls)."""
    if "city" in client_config:
        return "city:" + client_config["city"].strip().lower()
    return f"coord:{client_config['lat']:.4f},{client_config['lon']:.4f}"


def _num(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def _props(source: dict, fields: list[tuple[str, str, str, str, str]]) -> list[PropertySpec]:
    """(payload key, property id, name, unit, semantic type) for every key present."""
    return [PropertySpec(id=pid, name=name, value=_num(source[key]), type="NUMBER", unit=unit,
                         property_type=ptype)
            for key, pid, name, unit, ptype in fields if source.get(key) is not None]


def map_weather(payload: dict, client_config: dict) -> list[ThingSpec]:
    main = payload.get("main") or {}
    wind = payload.get("wind") or {}
    conditions = (payload.get("weather") or [{}])[0]
    components = [
        ComponentSpec(id="temperature", name="Temperature", component_type="TEMPERATURE_SENSOR",
                      properties=_props(main, [
                          ("temp", "temperature", "Temperature", "°C", "TEMPERATURE"),
                          ("feels_like", "feels_like", "Feels like", "°C", "TEMPERATURE"),
                          ("temp_min", "temp_min", "Minimum", "°C", "TEMPERATURE"),
                          ("temp_max", "temp_max", "Maximum", "°C", "TEMPERATURE")])),
        ComponentSpec(id="humidity", name="Humidity", component_type="HUMIDITY_SENSOR",
                      properties=_props(main, [
                          ("humidity", "humidity", "Humidity", "%", "HUMIDITY")])),
        ComponentSpec(id="pressure", name="Pressure", component_type="PRESSURE_SENSOR",
                      properties=_props(main, [
                          ("pressure", "pressure", "Pressure", "hPa", "PRESSURE")])),
        ComponentSpec(id="wind", name="Wind", component_type="WIND_SENSOR",
                      properties=_props(wind, [
                          ("speed", "speed", "Speed", "m/s", "WIND_SPEED"),
                          ("deg", "direction", "Direction", "°", "WIND_DIRECTION"),
                          ("gust", "gust", "Gust", "m/s", "WIND_SPEED")])),
        ComponentSpec(id="conditions", name="Conditions", component_type="WEATHER",
                      properties=[
                          *_props(payload.get("clouds") or {}, [
                              ("all", "cloudiness", "Cloudiness", "%", "CLOUDINESS")]),
                          *_props(payload, [
                              ("visibility", "visibility", "Visibility", "m", "DISTANCE")]),
                          PropertySpec(id="condition", name="Condition", type="STRING",
                                       value=str(conditions.get("main", ""))),
                          PropertySpec(id="description", name="Description", type="STRING",
                                       value=str(conditions.get("description", "")))]),
    ]
    coord = payload.get("coord") or {}
    name = payload.get("name") or client_config.get("city") or location_id(client_config)
    attributes = {k: _num(v) for k, v in (("country", (payload.get("sys") or {}).get("country")),
                                          ("city_id", payload.get("id")),
                                          ("lat", coord.get("lat")), ("lon", coord.get("lon")))
                  if v not in (None, "")}
    return [ThingSpec(connector_thing_id=location_id(client_config), name=f"Weather {name}",
                      manufacturer="OpenWeatherMap", display_type="WEATHER_STATION",
                      main_component_id="temperature",
                      components=[c for c in components if c.properties],
                      status="AVAILABLE", attributes=attributes)]
