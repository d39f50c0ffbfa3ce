"""Response bodies of the Netatmo simulator, shaped like recorded real responses (pyatmo's
fixtures): one station with outdoor, wind, rain and indoor modules, and one home with rooms."""

from __future__ import annotations

import hashlib
import math


def user_ids(user: int) -> dict:
    """Deterministic per-user ids, so two users' things never collide."""
    hi, lo = divmod(user, 256)
    mac = lambda prefix: f"{prefix}:{hi % 256:02x}:{lo:02x}"  # noqa: E731
    return {"station": mac("70:ee:50:00"), "outdoor": mac("02:00:00:00"),
            "wind": mac("06:00:00:00"), "rain": mac("05:00:00:00"), "indoor": mac("03:00:00:00"),
            "home": f"{user:024x}"}


ROOMS = [("2746182631", "Livingroom", "livingroom"), ("3688132631", "Bedroom", "bedroom")]


def _wave(user: int, device: str, bucket: int) -> float:
    seed = int(hashlib.sha256(f"{user}:{device}".encode()).hexdigest()[:6], 16)
    return math.sin(bucket / 5.0 + seed % 97)


def stations(user: int, bucket: int, now: int, unreachable: list[str] = ()) -> dict:
    ids = user_ids(user)
    w = lambda d: _wave(user, d, bucket)  # noqa: E731

    def module(kind, mtype, name, data_type, dashboard, battery=5200):
        answer = {"_id": ids[kind], "type": mtype, "module_name": name, "data_type": data_type,
                  "last_setup": 1544558433, "reachable": True, "firmware": 46,
                  "last_message": now - 8, "last_seen": now - 40, "rf_status": 65,
                  "battery_vp": battery, "battery_percent": 58,
                  "dashboard_data": {"time_utc": now - 40, **dashboard}}
        if kind in unreachable:  # as the real answer has it: no readings, last seen long ago
            del answer["dashboard_data"]
            answer.update(reachable=False, last_message=now - 7200, last_seen=now - 7260)
        return answer

    indoor_temp = round(21 + 2 * w("station"), 1)
    outdoor_temp = round(8 + 6 * w("outdoor"), 1)
    return {"status": "ok", "time_server": now, "time_exec": 0.04, "body": {"devices": [{
        "_id": ids["station"], "type": "NAMain", "station_name": f"Home {user}",
        "module_name": "Indoor", "date_setup": 1544558432, "last_setup": 1544558432,
        "last_status_store": now - 10, "firmware": 137, "wifi_status": 45, "reachable": True,
        "co2_calibrating": False, "data_type": ["Temperature", "CO2", "Humidity", "Noise",
                                                "Pressure"],
        "place": {"altitude": 664, "city": "Frankfurt", "country": "DE",
                  "timezone": "Europe/Berlin", "location": [52.516263, 13.377726]},
        "dashboard_data": {"time_utc": now - 10, "Temperature": indoor_temp,
                           "CO2": 600 + int(150 * w("co2")), "Humidity": 45 + int(8 * w("hum")),
                           "Noise": 37 + int(5 * w("noise")),
                           "Pressure": round(1017.3 + 4 * w("pressure"), 1),
                           "AbsolutePressure": round(939.7 + 4 * w("pressure"), 1),
                           "min_temp": round(indoor_temp - 1.2, 1),
                           "max_temp": round(indoor_temp + 1.0, 1), "date_min_temp": now - 9000,
                           "date_max_temp": now - 3000, "temp_trend": "stable",
                           "pressure_trend": "down"},
        "modules": [
            module("outdoor", "NAModule1", "Outdoor", ["Temperature", "Humidity"], {
                "Temperature": outdoor_temp, "Humidity": 70 + int(15 * w("ohum")),
                "min_temp": round(outdoor_temp - 3, 1), "max_temp": round(outdoor_temp + 2, 1),
                "temp_trend": "up"}),
            module("wind", "NAModule2", "Wind", ["Wind"], {
                "WindStrength": 10 + int(8 * w("wind")), "WindAngle": (user * 37 + bucket) % 360,
                "GustStrength": 18 + int(10 * w("gust")), "GustAngle": (user * 41) % 360,
                "max_wind_str": 32, "max_wind_angle": 80}),
            module("rain", "NAModule3", "Rain", ["Rain"], {
                "Rain": round(max(0.0, w("rain")) * 0.8, 3),
                "sum_rain_1": round(max(0.0, w("rain")) * 1.5, 3),
                "sum_rain_24": round(4 + 3 * w("rain"), 3)}, battery=5800),
            module("indoor", "NAModule4", "Bedroom", ["Temperature", "CO2", "Humidity"], {
                "Temperature": round(19 + w("bed"), 1), "CO2": 700 + int(200 * w("bco2")),
                "Humidity": 50 + int(6 * w("bhum")), "min_temp": 18.1, "max_temp": 20.4,
                "temp_trend": "stable"}),
        ]}], "user": {"mail": f"user{user}@example.com",
                      "administrative": {"lang": "en", "unit": 0, "windunit": 0,
                                         "pressureunit": 0, "feel_like_algo": 0}}}}


def homesdata(user: int, now: int) -> dict:
    ids = user_ids(user)
    return {"status": "ok", "time_server": now, "body": {"homes": [{
        "id": ids["home"], "name": f"Home {user}", "altitude": 112,
        "coordinates": [52.516263, 13.377726], "country": "DE", "timezone": "Europe/Berlin",
        "rooms": [{"id": rid, "name": name, "type": rtype, "module_ids": [f"04:00:00:{i:02x}"]}
                  for i, (rid, name, rtype) in enumerate(ROOMS)],
        "modules": [{"id": f"04:00:00:{i:02x}", "type": "NRV", "name": f"Valve {name}",
                     "setup_date": 1550160191, "room_id": rid, "bridge": "12:34:56:00:fa:d0"}
                    for i, (rid, name, _) in enumerate(ROOMS)],
        "therm_setpoint_default_duration": 120, "therm_mode": "schedule"}],
        "user": {"email": f"user{user}@example.com", "language": "en-US", "locale": "en-US",
                 "unit_system": 0, "unit_pressure": 0, "unit_wind": 0,
                 "id": f"{user:024x}"}}}


def homestatus(user: int, bucket: int, now: int, setpoints: dict) -> dict:
    ids = user_ids(user)
    rooms = []
    for rid, _, _ in ROOMS:
        mode, temp, end = setpoints.get(rid, ("schedule", 19.0, None))
        rooms.append({"id": rid, "reachable": True, "anticipating": False,
                      "heating_power_request": 0, "open_window": False,
                      "therm_measured_temperature": round(19.5 + _wave(user, rid, bucket), 1),
                      "therm_setpoint_temperature": temp, "therm_setpoint_mode": mode,
                      "therm_setpoint_start_time": now - 600,
                      "therm_setpoint_end_time": end or now + 7200})
    return {"status": "ok", "time_server": now, "body": {"home": {
        "id": ids["home"], "rooms": rooms,
        "modules": [{"id": f"04:00:00:{i:02x}", "type": "NRV", "reachable": True,
                     "battery_state": "full", "battery_level": 3200, "rf_strength": 58,
                     "firmware_revision": 79, "bridge": "12:34:56:00:fa:d0"}
                    for i in range(len(ROOMS))]}}}


CONSENT_PAGE = """<!doctype html>
<html><head><title>Netatmo (simulator) - authorize {client_id}</title></head>
<body><h1>Authorize access</h1>
<p>The application <b>{client_id}</b> asks for: {scope}</p>
<form method="post" action="/oauth2/authorize">
{hidden}
<p><label>Signed in as <input id="login" name="login" type="email" placeholder="new account">
</label></p>
<button id="accept" name="decision" value="accept" type="submit">Accept</button>
<button id="deny" name="decision" value="deny" type="submit">Deny</button>
</form></body></html>"""
