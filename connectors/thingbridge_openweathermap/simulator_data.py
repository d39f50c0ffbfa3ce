"""Response bodies of the OpenWeatherMap simulator, taken from recorded real responses."""

from __future__ import annotations

import json

from werkzeug.wrappers import Response

ERROR_401 = {"cod": 401, "message": "Invalid API key. Please see "
                                    "https://openweathermap.org/faq#error401 for more info."}
ERROR_404 = {"cod": "404", "message": "city not found"}
ERROR_429 = {"cod": 429, "message": "Your account is temporarily blocked due to exceeding of "
                                    "requests limitation of your subscription type. Please "
                                    "choose the proper subscription "
                                    "https://openweathermap.org/price"}
ERROR_500 = {"cod": "500", "message": "Internal server error"}

# name -> (display name, country, city id, lat, lon)
CITIES = {
    "berlin": ("Berlin", "DE", 2950159, 52.5244, 13.4105),
    "london": ("London", "GB", 2643743, 51.5085, -0.1257),
    "lisbon": ("Lisbon", "PT", 2267057, 38.7167, -9.1333),
    "minsk": ("Minsk", "BY", 625144, 53.9, 27.5667),
    "frankfurt": ("Frankfurt am Main", "DE", 2925533, 50.1155, 8.6842),
    "socorro": ("Socorro", "PT", 8012502, 38.7223, -9.1393),
}

CONDITIONS = [
    {"id": 802, "main": "Clouds", "description": "scattered clouds", "icon": "03d"},
    {"id": 800, "main": "Clear", "description": "clear sky", "icon": "01d"},
    {"id": 500, "main": "Rain", "description": "light rain", "icon": "10d"},
    {"id": 600, "main": "Snow", "description": "light snow", "icon": "13d"},
    {"id": 701, "main": "Mist", "description": "mist", "icon": "50d"},
]


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json; charset=utf-8")
