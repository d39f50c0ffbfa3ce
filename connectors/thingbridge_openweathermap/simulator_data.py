"""Response bodies of the OpenWeatherMap simulator, taken from recorded real responses.

Embedded as data because the simulator must not read files per request (nor ship any).
"""

from __future__ import annotations

import json

from werkzeug.wrappers import Response

ERROR_401 = {"cod": 401, "message": "Invalid API key. Please see "
                                    "https://openweathermap.org/faq#error401 for more info."}
ERROR_404 = {"cod": "404", "message": "city not found"}
ERROR_404_PATH = {"cod": "404", "message": "Internal error"}
ERROR_400_LAT = {"cod": "400", "message": "wrong latitude"}
ERROR_400_LON = {"cod": "400", "message": "wrong longitude"}
ERROR_400_GEOCODE = {"cod": "400", "message": "Nothing to geocode"}
ERROR_429 = {"cod": 429, "message": "Your account is temporarily blocked due to exceeding of "
                                    "requests limitation of your subscription type. Please "
                                    "choose the proper subscription "
                                    "https://openweathermap.org/price"}
ERROR_500 = {"cod": "500", "message": "Internal server error"}

# lower-case name -> (display name, country, city id, lat, lon)
CITIES = {
    "berlin": ("Berlin", "DE", 2950159, 52.5244, 13.4105),
    "london": ("London", "GB", 2643743, 51.5085, -0.1257),
    "lisbon": ("Lisbon", "PT", 2267057, 38.7167, -9.1333),
    "minsk": ("Minsk", "BY", 625144, 53.9, 27.5667),
    "frankfurt": ("Frankfurt am Main", "DE", 2925533, 50.1155, 8.6842),
    "frankfurt am main": ("Frankfurt am Main", "DE", 2925533, 50.1155, 8.6842),
    "paris": ("Paris", "FR", 2988507, 48.8534, 2.3488),
    "madrid": ("Madrid", "ES", 3117735, 40.4165, -3.7026),
    "mountain view": ("Mountain View", "US", 5375480, 37.3861, -122.0839),
    "quiapo district": ("Quiapo District", "PH", 1692184, 14.5995, 120.9842),
    "curacautin": ("Curacautín", "CL", 3892935, -38.4, -71.58),
    "socorro": ("Socorro", "PT", 8012502, 38.7223, -9.1393),
}
# Coordinates closer than this to a known city are reported under its name, as the real API
# names the nearest place.
NEAREST_CITY_DEGREES = 0.25

# Sky states by cloud cover, clearest first; precipitation replaces them on wet buckets.
SKY = [
    {"id": 800, "main": "Clear", "description": "clear sky", "icon": "01d"},
    {"id": 801, "main": "Clouds", "description": "few clouds", "icon": "02d"},
    {"id": 802, "main": "Clouds", "description": "scattered clouds", "icon": "03d"},
    {"id": 804, "main": "Clouds", "description": "overcast clouds", "icon": "04d"},
]
MIST = {"id": 701, "main": "Mist", "description": "mist", "icon": "50d"}
RAIN = {"id": 501, "main": "Rain", "description": "moderate rain", "icon": "10d"}
SNOW = {"id": 601, "main": "Snow", "description": "snow", "icon": "13n"}


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json; charset=utf-8")
