"""OpenWeatherMap connector: one thing per client location, polled from current weather."""
