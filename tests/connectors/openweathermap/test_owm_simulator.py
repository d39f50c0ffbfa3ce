"""The provider simulator over HTTP: readings, keys, errors, budgets and the test control API."""

import os
import socket
import subprocess
import sys

import pytest
import requests
from helpers import OTHER_KEY, OWM_KEY, wait_until

from thingbridge_openweathermap.mapping import map_weather
from thingbridge_openweathermap.simulator import BUCKET_SECONDS, reading


def weather(sim, key=OWM_KEY, **params):
    return requests.get(f"{sim}/data/2.5/weather",
                        params={**params, "appid": key, "units": "metric"}, timeout=5)


def test_readings_agree_within_a_bucket_and_change_across(sim, clock):
    first = weather(sim, lat=48.1, lon=11.6).json()
    clock.now += BUCKET_SECONDS - 16  # still the same bucket
    assert weather(sim, lat=48.1, lon=11.6).json() == first
    clock.now += 1
    later = weather(sim, lat=48.1, lon=11.6).json()
    assert later["dt"] == first["dt"] + BUCKET_SECONDS
    assert later["main"] != first["main"]
    assert abs(later["main"]["temp"] - first["main"]["temp"]) < 3  # slow drift, not noise


def test_pinned_bucket_overrides_the_clock_until_released(sim, clock, control):
    now = weather(sim, lat=48.1, lon=11.6).json()
    bucket = now["dt"] // BUCKET_SECONDS
    control(reading_bucket=bucket + 1)
    pinned = weather(sim, lat=48.1, lon=11.6).json()
    assert pinned["dt"] == now["dt"] + BUCKET_SECONDS and pinned["main"] != now["main"]
    clock.now += 5 * BUCKET_SECONDS
    assert weather(sim, lat=48.1, lon=11.6).json() == pinned  # the clock no longer moves it
    control(reading_bucket=None)
    assert weather(sim, lat=48.1, lon=11.6).json()["dt"] == now["dt"] + 5 * BUCKET_SECONDS


def test_readings_differ_between_locations_and_match_city_coordinates(sim):
    berlin, london = weather(sim, q="Berlin").json(), weather(sim, q="london,gb").json()
    assert berlin["main"] != london["main"]
    by_coords = weather(sim, lat=52.5244, lon=13.4105).json()
    assert by_coords == berlin  # same place, same reading, nearest city named


def test_open_sea_has_no_name_or_country(sim):
    body = weather(sim, lat=0, lon=-30).json()
    assert body["name"] == "" and body["id"] == 0 and "country" not in body["sys"]


def test_shapes_vary_like_the_real_api_and_always_map(sample):
    """Over two days of buckets the optional fields come and go as in the recorded samples."""
    real = sample("weather_current_success.json")
    seen, places = set(), [("Berlin", "DE", 1, 52.52, 13.405), ("", "", 0, -38.4, -71.58),
                           ("", "", 0, 14.6, 121.0), ("", "", 0, 70.0, 25.0)]
    for place in places:
        for bucket in range(288):
            body = reading(place, 1_800_000_000 + bucket * BUCKET_SECONDS)
            assert set(body) - {"rain", "snow"} <= set(real)
            assert set(body["main"]) == set(real["main"])
            seen |= {key for key in ("rain", "snow") if key in body}
            seen |= {f"no {key}" for key in ("gust", "deg") if key not in body["wind"]}
            [thing] = map_weather(body, {"lat": place[3], "lon": place[4]})
            assert thing.components
    assert seen == {"rain", "snow", "no gust", "no deg"}


@pytest.mark.parametrize("key", ["", "short", OWM_KEY.upper(), OWM_KEY + "0"])
def test_malformed_keys_get_the_real_401(sim, key):
    resp = weather(sim, key=key, q="Berlin")
    assert resp.status_code == 401
    assert resp.json() == {"cod": 401, "message": "Invalid API key. Please see "
                           "https://openweathermap.org/faq#error401 for more info."}


def test_location_errors_use_the_real_bodies(sim, sample):
    assert weather(sim, q="Atlantis").json() == {"cod": "404", "message": "city not found"}
    bad_lat = weather(sim, lat=91, lon=0)
    assert bad_lat.status_code == 400
    assert bad_lat.json() == sample("error_400_invalid_coordinates.json")
    assert weather(sim, lat=0, lon=181).json()["message"] == "wrong longitude"
    assert weather(sim, lat="north", lon=0).status_code == 400
    assert weather(sim, q="Curacautín").json()["name"] == "Curacautín"


def test_budget_is_per_key_and_per_minute(sim, clock, control):
    assert control(rate_limit_per_minute=2).json()["rate_limit_per_minute"] == 2
    assert [weather(sim, q="London").status_code for _ in range(3)] == [200, 200, 429]
    throttled = weather(sim, q="London")
    assert throttled.json()["cod"] == 429 and throttled.headers["Retry-After"] == "45"
    assert weather(sim, key=OTHER_KEY, q="London").status_code == 200  # its own budget
    clock.now += 45  # the next minute
    assert weather(sim, q="London").status_code == 200
    control(rate_limit_per_minute=None)
    assert all(weather(sim, q="London").status_code == 200 for _ in range(5))


def test_modes_switch_over_http(sim, control):
    for mode, status in [("error_500", 500), ("rate_limited", 429), ("invalid_json", 200),
                         ("ok", 200)]:
        assert control(mode=mode).ok
        assert weather(sim, q="Berlin").status_code == status
    control(mode="invalid_json")
    with pytest.raises(ValueError):
        weather(sim, q="Berlin").json()
    control(mode="timeout", timeout_seconds=0.2)
    with pytest.raises(requests.Timeout):
        requests.get(f"{sim}/data/2.5/weather", params={"appid": OWM_KEY, "q": "Berlin"},
                     timeout=0.05)


def test_stats_count_and_reset_clears(sim, stats, control):
    weather(sim, q="Berlin")
    weather(sim, key=OTHER_KEY, lat=1, lon=2)
    weather(sim, key="bad", q="Berlin")
    control(mode="error_500", revoked_keys=[OWM_KEY])
    assert stats() == {"calls": 3, "calls_by_key": {OWM_KEY: 1, OTHER_KEY: 1, "bad": 1},
                       "calls_by_location": {"52.5244,13.4105": 1, "1.0000,2.0000": 1},
                       "responses_by_status": {"200": 2, "401": 1},
                       "max_in_flight_per_location": 1, "mode": "error_500"}
    assert requests.post(f"{sim}/_sim/reset", timeout=5).ok
    assert stats()["calls"] == 0 and stats()["mode"] == "ok"
    assert weather(sim, q="Berlin").status_code == 200  # the revoked set was cleared too


@pytest.mark.parametrize("body, needle", [
    ({"mode": "sleepy"}, "mode must be one of"), ({"timeout_seconds": "2"}, "timeout_seconds"),
    ({"revoked_keys": OWM_KEY}, "revoked_keys"), ({"rate_limit_per_minute": 0}, "rate_limit"),
    ({"reading_bucket": "7"}, "reading_bucket"),
    ([1, 2], "JSON object")])
def test_control_rejects_bad_input(sim, body, needle):
    resp = requests.post(f"{sim}/_sim/control", json=body, timeout=5)
    assert resp.status_code == 400 and needle in resp.json()["error"]


def test_unknown_paths_and_wrong_methods(sim):
    assert requests.get(f"{sim}/data/2.5/forecast", timeout=5).status_code == 404
    assert requests.get(f"{sim}/_sim/control", timeout=5).status_code == 405
    assert requests.get(f"{sim}/_sim/reset", timeout=5).status_code == 405


def test_runs_standalone():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "thingbridge_openweathermap.simulator",
                             "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up():
            try:
                return weather(f"http://127.0.0.1:{port}", q="Lisbon")
            except requests.ConnectionError:
                return None
        resp = wait_until(up, timeout=20, interval=0.1, message="standalone simulator")
        assert resp.status_code == 200 and resp.json()["name"] == "Lisbon"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
