"""The plugin's calls over real HTTP to the simulator: success, and each error classification."""

import socket
import time

import pytest
from helpers import OWM_KEY

from thingbridge.connectors.contract import ConfigError, TransientError
from thingbridge_openweathermap.client import DEFAULT_RETRY_AFTER, retry_after


def test_fetch_by_city_and_map(plugin, ctx, stats):
    owm = plugin()
    payload = owm.fetch(ctx(city="Berlin,DE"))
    assert payload["name"] == "Berlin" and payload["sys"]["country"] == "DE"
    [thing] = owm.map_things(payload, {"city": "Berlin,DE"})
    assert thing.name == "Weather Berlin" and thing.connector_thing_id == "city:berlin,de"
    assert {"temperature", "humidity", "pressure", "wind", "conditions"} <= \
        {c.id for c in thing.components}
    assert stats()["calls_by_key"] == {OWM_KEY: 1}


def test_fetch_by_coordinates(plugin, ctx, stats):
    payload = plugin().fetch(ctx(lat=48.1, lon=11.6))
    assert payload["coord"] == {"lat": 48.1, "lon": 11.6}
    assert -30 < payload["main"]["temp"] < 45  # metric, not Kelvin
    assert stats()["calls_by_location"] == {"48.1000,11.6000": 1}


def test_revoked_key_is_config_error_until_restored(plugin, ctx, control):
    assert control(revoked_keys=[OWM_KEY]).ok
    with pytest.raises(ConfigError, match="invalid OpenWeatherMap app key: Invalid API key"):
        plugin().fetch(ctx(city="Berlin"))
    control(revoked_keys=[])  # the list replaces the revoked set
    assert plugin().fetch(ctx(city="Berlin"))["cod"] == 200


def test_unknown_city_is_config_error(plugin, ctx):
    with pytest.raises(ConfigError, match="location not found: city not found"):
        plugin().fetch(ctx(city="Atlantis"))


def test_rejected_coordinates_are_config_error(plugin, ctx):
    # The client schema stops this; a config stored before validation tightened may not.
    with pytest.raises(ConfigError, match="wrong latitude"):
        plugin().fetch(ctx(lat=91, lon=0))


def test_server_error_is_transient(plugin, ctx, control):
    control(mode="error_500")
    with pytest.raises(TransientError, match="answered 500") as info:
        plugin().fetch(ctx(city="Berlin"))
    assert info.value.retry_after is None  # the host's own backoff applies


def test_429_without_retry_after_waits_a_minute(plugin, ctx, control):
    control(mode="rate_limited")
    with pytest.raises(TransientError, match="rate limit: Your account is temporarily blocked") \
            as info:
        plugin().fetch(ctx(city="Berlin"))
    assert info.value.retry_after == DEFAULT_RETRY_AFTER == 60


def test_429_retry_after_header_is_honored(plugin, ctx, control):
    control(rate_limit_per_minute=1)
    plugin().fetch(ctx(city="London"))
    with pytest.raises(TransientError) as info:
        plugin().fetch(ctx(city="London"))
    assert info.value.retry_after == 45  # the clock is 15 s into its minute


def test_timeout_is_transient_and_bounded(plugin, ctx, control):
    control(mode="timeout", timeout_seconds=2)
    started = time.monotonic()
    with pytest.raises(TransientError, match="unreachable: ReadTimeout"):
        plugin(timeout=0.3).fetch(ctx(city="Berlin"))
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_transient(plugin, ctx):
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientError, match="unreachable: ConnectionError"):
        plugin(timeout=1, url=f"http://127.0.0.1:{port}").fetch(ctx(city="Berlin"))


def test_invalid_json_is_transient(plugin, ctx, control):
    control(mode="invalid_json")
    with pytest.raises(TransientError, match="invalid JSON"):
        plugin().fetch(ctx(city="Berlin"))


def test_check_accepts_a_good_key_with_one_call(plugin, stats):
    plugin().check({"app_key": OWM_KEY})
    assert stats()["calls"] == 1 and stats()["responses_by_status"] == {"200": 1}


@pytest.mark.parametrize("key", ["not-a-key", OWM_KEY.upper(), OWM_KEY[:-1], ""])
def test_check_rejects_a_bad_key(plugin, key):
    with pytest.raises(ConfigError, match="^invalid OpenWeatherMap app key"):
        plugin().check({"app_key": key})


def test_check_with_provider_down_is_transient_not_a_verdict(plugin, control):
    control(mode="error_500")
    with pytest.raises(TransientError):
        plugin().check({"app_key": OWM_KEY})


@pytest.mark.parametrize("header, expected", [
    (None, 60), ("", 60), ("120", 120), ("2.5", 2.5), ("-5", 0), ("soon", 60),
    ("Wed, 21 Oct 2015 07:28:30 GMT", 30), ("Wed, 21 Oct 2015 07:27:00 GMT", 0),
    # Absurd asks wait a day at most (they crashed the poll, or parked it for decades).
    ("inf", 86400), ("1e12", 86400), ("nan", 60), ("Fri, 31 Dec 9999 23:59:59 GMT", 86400)])
def test_retry_after_header_forms(header, expected):
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after(header, now=now) == expected
