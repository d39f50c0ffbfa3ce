"""A simulator of OpenWeatherMap's current-weather API (real response shapes and errors).

Readings depend only on (location, 10-minute bucket): repeated calls agree, later ones change.
A key is valid iff it is 32 lowercase hex characters and not revoked.
Test control over HTTP (the workers calling it run in other processes):
``POST /_sim/control`` {"mode": ok|error_500|timeout|rate_limited|invalid_json,
"timeout_seconds": float, "revoked_keys": [...] (replaces the set),
"rate_limit_per_minute": int|null, "reading_bucket": int|null (pins the 10-minute bucket
readings come from, so a benchmark decides when every value changes; null follows the clock)};
``GET /_sim/stats`` (calls, answers, and the most calls for one location ever in flight at
once: two polls of one client fetching together show as 2); ``POST /_sim/reset``.
Standalone: ``python -m thingbridge_openweathermap.simulator --port 8091``.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
import unicodedata
from collections import Counter

from werkzeug.wrappers import Request, Response

from thingbridge.localserver import simulator_main
from thingbridge_openweathermap import simulator_data as data
from thingbridge_openweathermap.simulator_data import json_response

KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")
BUCKET_SECONDS = 600
MODES = ("ok", "error_500", "timeout", "rate_limited", "invalid_json")


class OpenWeatherMapSimulator:
    def __init__(self, clock=time.time, rate_limit_per_minute: int | None = None):
        self.clock = clock
        self.lock = threading.Lock()
        self.default_rate_limit = rate_limit_per_minute
        self.generation = 0
        self.routes = {"/data/2.5/weather": ("GET", self.weather),
                       "/_sim/stats": ("GET", self.stats),
                       "/_sim/control": ("POST", self.control),
                       "/_sim/reset": ("POST", self.reset_endpoint)}
        self.reset()

    def reset(self) -> None:
        with self.lock:
            # A request still sleeping in timeout mode must not count into the next test.
            self.generation += 1
            self.mode, self.timeout_seconds = "ok", 5.0
            self.revoked: frozenset[str] = frozenset()
            self.rate_limit = self.default_rate_limit
            self.reading_bucket: int | None = None
            self.calls, self.by_key, self.by_location = 0, Counter(), Counter()
            self.by_status: Counter = Counter()
            self.in_flight: Counter = Counter()  # location as asked -> calls being answered
            self.max_in_flight = 0
            self.window: dict[str, tuple[int, int]] = {}  # key -> (minute, calls in it)

    def __call__(self, environ, start_response):
        request = Request(environ)
        route = self.routes.get(request.path)
        if route is None:
            response = json_response(data.ERROR_404_PATH, 404)
        elif request.method != route[0]:
            response = json_response({"cod": "405", "message": "method not allowed"}, 405,
                                     {"Allow": route[0]})
        else:
            response = route[1](request)
        return response(environ, start_response)

    # --- test control ---------------------------------------------------------------------
    def stats(self, request: Request) -> Response:
        with self.lock:
            return json_response({"calls": self.calls, "calls_by_key": dict(self.by_key),
                                  "calls_by_location": dict(self.by_location),
                                  "responses_by_status": dict(self.by_status),
                                  "max_in_flight_per_location": self.max_in_flight,
                                  "mode": self.mode})

    def reset_endpoint(self, request: Request) -> Response:
        self.reset()
        return json_response({"ok": True})

    def control(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        problem = _control_problem(body)
        if problem:
            return json_response({"ok": False, "error": problem}, 400)
        with self.lock:
            self.mode = body.get("mode", self.mode)
            self.timeout_seconds = float(body.get("timeout_seconds", self.timeout_seconds))
            if "revoked_keys" in body:
                self.revoked = frozenset(body["revoked_keys"])
            if "rate_limit_per_minute" in body:
                self.rate_limit = body["rate_limit_per_minute"]
            if "reading_bucket" in body:
                self.reading_bucket = body["reading_bucket"]
            return json_response({"ok": True, "mode": self.mode,
                                  "rate_limit_per_minute": self.rate_limit})

    # --- the API --------------------------------------------------------------------------
    def weather(self, request: Request) -> Response:
        key = request.args.get("appid", "")
        asked = request.args.get("q") or f"{request.args.get('lat')},{request.args.get('lon')}"
        with self.lock:
            self.calls += 1
            self.by_key[key] += 1
            mode, revoked, generation = self.mode, self.revoked, self.generation
            self.in_flight[asked] += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight[asked])
        try:
            response = self._answer(request, key, mode, revoked, generation)
        finally:
            with self.lock:
                self.in_flight[asked] -= 1
        with self.lock:
            if generation == self.generation:
                self.by_status[str(response.status_code)] += 1
        return response

    def _answer(self, request: Request, key: str, mode: str, revoked: frozenset,
                generation: int) -> Response:
        if mode == "timeout":
            time.sleep(self.timeout_seconds)  # the answer comes, but after the caller gave up
        if mode == "error_500":
            return json_response(data.ERROR_500, 500)
        if not KEY_PATTERN.match(key) or key in revoked:
            return json_response(data.ERROR_401, 401)
        if mode == "rate_limited":
            return json_response(data.ERROR_429, 429)  # like the real API: no Retry-After
        wait = self._over_budget(key)
        if wait is not None:
            return json_response(data.ERROR_429, 429, {"Retry-After": str(wait)})
        place = _locate(request.args)
        if isinstance(place, Response):
            return place
        with self.lock:
            if self.generation == generation:
                self.by_location[f"{place[3]:.4f},{place[4]:.4f}"] += 1
        if mode == "invalid_json":
            return Response('{"coord": {"lon": ', content_type="application/json")
        return json_response(reading(place, self.clock(), self.reading_bucket))

    def _over_budget(self, key: str) -> int | None:
        """Seconds until the key's minute ends if this call exceeds its budget, else None."""
        if not self.rate_limit:
            return None
        now = self.clock()
        minute = int(now // 60)
        with self.lock:
            start, used = self.window.get(key, (minute, 0))
            used = used + 1 if start == minute else 1
            self.window[key] = (minute, used)
            if used <= self.rate_limit:
                return None
        return max(1, math.ceil((minute + 1) * 60 - now))


def _control_problem(body) -> str | None:
    if not isinstance(body, dict):
        return "expected a JSON object"
    if "mode" in body and body["mode"] not in MODES:
        return f"mode must be one of {', '.join(MODES)}"
    seconds = body.get("timeout_seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return "timeout_seconds must be a number >= 0"
    keys = body.get("revoked_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return "revoked_keys must be a list of strings"
    limit = body.get("rate_limit_per_minute")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        return "rate_limit_per_minute must be an integer >= 1 or null"
    bucket = body.get("reading_bucket")
    if bucket is not None and (isinstance(bucket, bool) or not isinstance(bucket, int)):
        return "reading_bucket must be an integer or null"
    return None


def _fold(name: str) -> str:
    # "Curacautín" and "curacautin" are the same query to the real API.
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(plain.lower().split())


def _locate(args):
    """(name, country, city id, lat, lon) of the request's location, or an error response."""
    if "q" in args:
        if not args["q"].strip():
            return json_response(data.ERROR_400_GEOCODE, 400)
        city = data.CITIES.get(_fold(args["q"].split(",")[0]))
        return city if city else json_response(data.ERROR_404, 404)
    try:
        lat, lon = float(args["lat"]), float(args["lon"])
    except (KeyError, ValueError):
        return json_response(data.ERROR_400_GEOCODE, 400)
    if not -90 <= lat <= 90:  # NaN fails both comparisons too
        return json_response(data.ERROR_400_LAT, 400)
    if not -180 <= lon <= 180:
        return json_response(data.ERROR_400_LON, 400)
    near = [c for c in data.CITIES.values() if abs(c[3] - lat) <= data.NEAREST_CITY_DEGREES
            and abs(c[4] - lon) <= data.NEAREST_CITY_DEGREES]
    if near:
        name, country, city_id, _, _ = min(near, key=lambda c: (c[3] - lat) ** 2
                                           + (c[4] - lon) ** 2)
        return name, country, city_id, lat, lon
    return "", "", 0, lat, lon


def reading(place: tuple, now: float, bucket: int | None = None) -> dict:
    """The current-weather body for a place; a function of (place, 10-minute bucket) only."""
    name, country, city_id, lat, lon = place
    if bucket is None:
        bucket = int(now // BUCKET_SECONDS)
    seed = int(hashlib.sha256(f"{lat:.4f},{lon:.4f}".encode()).hexdigest()[:8], 16)
    phase = (seed % 1000) / 1000 * 2 * math.pi
    # Slow waves (hours long) so consecutive buckets differ a little, not wildly.
    warm, breeze, sky = (math.sin(bucket / p + phase * k) for p, k in ((6, 1), (9, 2), (13, 3)))
    temp = round(24 - abs(lat) * 0.35 + seed % 7 + 5 * warm, 2)
    speed = round(max(0.0, 0.3 + 7 * abs(breeze) - 0.5 * (seed % 3)), 2)
    clouds = int(round(50 + 50 * sky))
    condition = data.SKY[min(3, clouds // 26)]
    wet, misty = sky > 0.8 and (seed + bucket // 3) % 2 == 0, clouds < 20 and warm < -0.7
    if wet:
        condition = data.SNOW if temp <= 1 else data.RAIN
    elif misty:
        condition = data.MIST
    wind: dict = {"speed": speed}
    if speed >= 0.5:  # calm air has no direction: the real API then omits deg
        wind["deg"] = (seed + bucket * 7) % 360
    if speed >= 4:  # and reports gusts only when there are some
        wind["gust"] = round(speed * 1.6, 2)
    pressure = 1013 + round(12 * breeze)
    humidity = min(100, int(65 - 25 * warm + 10 * wet))
    noon = int(now // 86400) * 86400 + 43200 - round(lon * 240)  # solar noon, 4 min/degree
    body = {
        "coord": {"lon": lon, "lat": lat}, "weather": [condition], "base": "stations",
        "main": {"temp": temp, "feels_like": round(temp - 0.25 * speed, 2),
                 "temp_min": round(temp - 1.1, 2), "temp_max": round(temp + 1.4, 2),
                 "pressure": pressure, "humidity": humidity, "sea_level": pressure,
                 "grnd_level": pressure - 10},
        "visibility": 2500 if misty else 6000 if wet else 10000, "wind": wind,
        "clouds": {"all": clouds}, "dt": bucket * BUCKET_SECONDS,
        "sys": {"type": 2, "id": 2000000 + seed % 100000, "country": country,
                "sunrise": noon - 21600, "sunset": noon + 21600},
        "timezone": round(lon / 15) * 3600, "id": city_id, "name": name, "cod": 200,
    }
    if wet:
        body["snow" if condition is data.SNOW else "rain"] = {"1h": round(0.2 + seed % 25 / 10, 2)}
    if not country:  # open sea, no nearby place: the real API leaves country out
        del body["sys"]["country"]
    return body


def create_simulator(**options) -> OpenWeatherMapSimulator:
    """The WSGI app. Options: ``clock`` (callable -> epoch seconds), ``rate_limit_per_minute``."""
    return OpenWeatherMapSimulator(**options)


if __name__ == "__main__":
    simulator_main(create_simulator, 8091, __doc__.splitlines()[0])
