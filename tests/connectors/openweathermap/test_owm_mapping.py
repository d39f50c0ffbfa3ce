"""The pure mapping on real recorded OpenWeatherMap responses (tests/fixtures/openweathermap/)."""

import re

import pytest

from thingbridge.connectors.contract import TransientError
from thingbridge_openweathermap.mapping import location_id, map_weather, number

ID = re.compile(r"^[a-zA-Z0-9\-_]{1,200}$")
BERLIN = {"lat": 52.52, "lon": 13.405}
UNITS = {("temperature", "temperature"): "°C", ("temperature", "feels_like"): "°C",
         ("temperature", "temp_min"): "°C", ("temperature", "temp_max"): "°C",
         ("humidity", "humidity"): "%", ("pressure", "pressure"): "hPa",
         ("wind", "speed"): "m/s", ("wind", "direction"): "°", ("wind", "gust"): "m/s",
         ("conditions", "cloudiness"): "%", ("conditions", "visibility"): "m",
         ("conditions", "condition"): "", ("conditions", "description"): "",
         ("precipitation", "rain_1h"): "mm", ("precipitation", "rain_3h"): "mm",
         ("precipitation", "snow_1h"): "mm", ("precipitation", "snow_3h"): "mm"}
SUCCESS_SAMPLES = ["weather_current_success.json", "weather_current_rain.json",
                   "weather_current_snow.json", "current-weather-minsk.json",
                   "current-weather-minsk-missing-gust.json",
                   "current-weather-minsk-missing-wind-direction.json",
                   "current-weather-official.json", "current_weather_london_2013.json"]


def props(thing):
    return {(c.id, p.id): p for c in thing.components for p in c.properties}


@pytest.mark.parametrize("name", SUCCESS_SAMPLES)
def test_every_real_sample_maps_to_one_valid_thing(sample, name):
    payload = sample(name)
    things = map_weather(payload, BERLIN)
    assert len(things) == 1
    [thing] = things
    assert thing.connector_thing_id == "coord:52.5200,13.4050"
    assert thing.status == "AVAILABLE" and thing.name == f"Weather {payload['name']}"
    assert thing.main_component_id in {c.id for c in thing.components}
    found = props(thing)
    assert float(found[("temperature", "temperature")].value) == payload["main"]["temp"]
    assert float(found[("pressure", "pressure")].value) == payload["main"]["pressure"]
    assert found[("conditions", "condition")].value == payload["weather"][0]["main"]
    assert found[("conditions", "description")].value == payload["weather"][0]["description"]
    for (cid, pid), prop in found.items():
        assert ID.match(cid) and ID.match(pid)
        assert isinstance(prop.value, str) and prop.value
        assert prop.unit == UNITS[(cid, pid)]
        assert prop.type == ("STRING" if cid == "conditions" and not prop.unit else "NUMBER")
        if prop.type == "NUMBER":
            float(prop.value)


def test_full_sample_has_every_listed_reading(sample):
    found = props(map_weather(sample("weather_current_success.json"), BERLIN)[0])
    assert {key: p.value for key, p in found.items()} == {
        ("temperature", "temperature"): "22.55", ("temperature", "feels_like"): "22.87",
        ("temperature", "temp_min"): "21.48", ("temperature", "temp_max"): "23.94",
        ("humidity", "humidity"): "77", ("pressure", "pressure"): "1016",
        ("wind", "speed"): "4.47", ("wind", "direction"): "190", ("wind", "gust"): "7.6",
        ("conditions", "cloudiness"): "48", ("conditions", "visibility"): "10000",
        ("conditions", "condition"): "Clouds", ("conditions", "description"): "scattered clouds"}


@pytest.mark.parametrize("name, missing, kept", [
    ("current-weather-minsk-missing-gust.json", "gust", "direction"),
    ("current-weather-minsk-missing-wind-direction.json", "direction", "gust")])
def test_missing_wind_fields_are_omitted_not_invented(sample, name, missing, kept):
    [thing] = map_weather(sample(name), {"city": "Minsk"})
    assert ("wind", missing) not in props(thing)
    assert ("wind", kept) in props(thing) and ("wind", "speed") in props(thing)
    assert thing.connector_thing_id == "city:minsk"


def test_precipitation_only_when_reported(sample):
    assert props(map_weather(sample("weather_current_rain.json"), BERLIN)[0])[
        ("precipitation", "rain_1h")].value == "2.47"
    assert props(map_weather(sample("weather_current_snow.json"), BERLIN)[0])[
        ("precipitation", "snow_1h")].value == "1.37"
    minsk = props(map_weather(sample("current-weather-minsk.json"), BERLIN)[0])
    assert {k[1] for k in minsk if k[0] == "precipitation"} == {"rain_1h", "rain_3h", "snow_1h",
                                                                "snow_3h"}
    [dry] = map_weather(sample("weather_current_success.json"), BERLIN)
    assert "precipitation" not in {c.id for c in dry.components}


def test_attributes_and_city_id_zero_left_out(sample):
    [thing] = map_weather(sample("weather_current_success.json"), BERLIN)
    assert thing.attributes == {"country": "PT", "city_id": "8012502", "lat": "38.7223",
                                "lon": "-9.1393"}
    [minsk] = map_weather(sample("current-weather-minsk.json"), {"city": "Minsk"})
    assert "city_id" not in minsk.attributes  # the provider sends id 0 for "no city"
    assert minsk.attributes["country"] == "BY"


def test_name_falls_back_to_the_configured_location(sample):
    payload = {**sample("weather_current_success.json"), "name": ""}
    assert map_weather(payload, {"city": " Porto,PT "})[0].name == "Weather Porto,PT"
    assert map_weather(payload, {"lat": 41.15, "lon": -8.61})[0].name == \
        "Weather 41.1500, -8.6100"


def test_thing_id_comes_from_the_config_not_the_payload(sample):
    payload = sample("weather_current_success.json")
    moved = {**payload, "id": 999, "name": "Elsewhere"}
    assert map_weather(payload, BERLIN)[0].connector_thing_id == \
        map_weather(moved, BERLIN)[0].connector_thing_id
    assert location_id({"city": "  Frankfurt  am Main "}) == "city:frankfurt am main"
    assert location_id({"city": "Berlin"}) == location_id({"city": "BERLIN"}) == "city:berlin"
    assert location_id({"lat": 51, "lon": -0.0}) == location_id({"lat": 51.0, "lon": 0}) == \
        "coord:51.0000,0.0000"


def test_condition_strings_are_not_invented(sample):
    payload = {**sample("weather_current_success.json"), "weather": []}
    found = props(map_weather(payload, BERLIN)[0])
    assert ("conditions", "condition") not in found and ("conditions", "cloudiness") in found


def test_payload_without_readings_is_transient():
    with pytest.raises(TransientError, match="without current readings"):
        map_weather({"cod": 200, "name": "Berlin"}, BERLIN)


@pytest.mark.parametrize("value, text", [(-122.0841, "-122.0841"), (2.0, "2"), (1013, "1013"),
                                         (0.1, "0.1"), (-1.44, "-1.44"), (100000.5, "100000.5")])
def test_numbers_keep_their_precision_without_float_noise(value, text):
    assert number(value) == text
