"""A simulator of OpenWeatherMap's current-weather API (real response shapes and errors).

Readings depend only on (location, 10-minute bucket): repeated calls agree, later ones change.
Test control over HTTP (workers calling it run in other processes):
``POST /_sim/control`` {"mode": ok|error_500|timeout|rate_limited, "timeout_seconds",
"revoked_keys", "rate_limit_per_minute"}, ``GET /_sim/stats``, ``POST /_sim/reset``.
Standalone: ``python -m thingbridge_openweathermap.simulator --port 8091``.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import Counter

from werkzeug.wrappers import Request, Response

from thingbridge.localserver import simulator_main
from thingbridge_openweathermap.simulator_data import (
    CITIES,
    CONDITIONS,
    ERROR_401,
    ERROR_404,
    ERROR_429,
    ERROR_500,
    json_response,
)

KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")
BUCKET_SECONDS = 600


class OpenWeatherMapSimulator:
    def __init__(self, clock=time.time, rate_limit_per_minute: int | None = None):
        self.clock = clock
        self.lock = threading.Lock()
        self.default_rate_limit = rate_limit_per_minute
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.mode, self.timeout_seconds = "ok", 5.0
            self.revoked: set[str] = set()
            self.rate_limit = self.default_rate_limit
            self.calls, self.by_key, self.by_location = 0, Counter(), Counter()
            self.window: dict[str, tuple[int, int]] = {}

    def __call__(self, environ, start_response):
        request = Request(environ)
        path = request.path
        if path.startswith("/_sim/"):
            response = self.control(request)
        elif path == "/data/2.5/weather":
            response = self.weather(request)
        else:
            response = json_response({"cod": 404, "message": "Internal error"}, 404)
        return response(environ, start_response)

    # --- test control ---------------------------------------------------------------------
    def control(self, request: Request) -> Response:
        if request.path == "/_sim/stats":
            with self.lock:
                return json_response({"calls": self.calls, "calls_by_key": dict(self.by_key),
                                      "calls_by_location": dict(self.by_location)})
        if request.path == "/_sim/reset":
            self.reset()
            return json_response({"ok": True})
        body = request.get_json(silent=True) or {}
        with self.lock:
            self.mode = body.get("mode", self.mode)
            self.timeout_seconds = float(body.get("timeout_seconds", self.timeout_seconds))
            self.revoked |= set(body.get("revoked_keys", []))
            if "rate_limit_per_minute" in body:
                self.rate_limit = body["rate_limit_per_minute"]
        return json_response({"ok": True, "mode": self.mode})

    # --- the API --------------------------------------------------------------------------
    def weather(self, request: Request) -> Response:
        key = request.args.get("appid", "")
        with self.lock:
            self.calls += 1
            self.by_key[key] += 1
            mode = self.mode
        if mode == "timeout":
            time.sleep(self.timeout_seconds)
        if mode == "error_500":
            return json_response(ERROR_500, 500)
        if not KEY_PATTERN.match(key) or key in self.revoked:
            return json_response(ERROR_401, 401)
        if mode == "rate_limited" or self._over_budget(key):
            return json_response(ERROR_429, 429, {"Retry-After": "60"})
        location = self._locate(request.args)
        if isinstance(location, Response):
            return location
        name, country, city_id, lat, lon = location
        with self.lock:
            self.by_location[f"{lat:.4f},{lon:.4f}"] += 1
        return json_response(self._reading(name, country, city_id, lat, lon))

    def _over_budget(self, key: str) -> bool:
        if not self.rate_limit:
            return False
        minute = int(self.clock() // 60)
        with self.lock:
            start, used = self.window.get(key, (minute, 0))
            if start != minute:
                start, used = minute, 0
            self.window[key] = (start, used + 1)
            return used + 1 > self.rate_limit

    def _locate(self, args):
        if "q" in args:
            city = CITIES.get(args["q"].split(",")[0].strip().lower())
            return city if city else json_response(ERROR_404, 404)
        try:
            lat, lon = float(args.get("lat", "")), float(args.get("lon", ""))
        except ValueError:
            return json_response({"cod": "400", "message": "Nothing to geocode"}, 400)
        if not -90 <= lat <= 90:
            return json_response({"cod": "400", "message": "wrong latitude"}, 400)
        if not -180 <= lon <= 180:
            return json_response({"cod": "400", "message": "wrong longitude"}, 400)
        return ("", "", 0, lat, lon)

    def _reading(self, name, country, city_id, lat, lon) -> dict:
        now = self.clock()
        bucket = int(now // BUCKET_SECONDS)
        seed = int(hashlib.sha256(f"{lat:.4f},{lon:.4f}".encode()).hexdigest()[:8], 16)
        wave = math.sin(bucket / 6.0 + seed % 100)
        temp = round(12 + (seed % 15) + 6 * wave, 2)
        condition = CONDITIONS[(seed + bucket) % len(CONDITIONS)]
        return {
            "coord": {"lon": lon, "lat": lat}, "weather": [condition], "base": "stations",
            "main": {"temp": temp, "feels_like": round(temp - 1.3, 2),
                     "temp_min": round(temp - 2.1, 2), "temp_max": round(temp + 1.9, 2),
                     "pressure": 1000 + (seed + bucket) % 30, "humidity": 40 + (seed + bucket) % 55,
                     "sea_level": 1016, "grnd_level": 1006},
            "visibility": 10000, "wind": {"speed": round(1 + abs(wave) * 8, 2),
                                          "deg": (seed + bucket * 7) % 360,
                                          "gust": round(2 + abs(wave) * 11, 2)},
            "clouds": {"all": (seed + bucket * 3) % 101}, "dt": bucket * BUCKET_SECONDS,
            "sys": {"type": 2, "id": 2016751, "country": country, "sunrise": 1785562660,
                    "sunset": 1785613679},
            "timezone": 3600, "id": city_id, "name": name, "cod": 200,
        }


def create_simulator(**options) -> OpenWeatherMapSimulator:
    return OpenWeatherMapSimulator(**options)


if __name__ == "__main__":
    simulator_main(create_simulator, 8091, __doc__.splitlines()[0])
