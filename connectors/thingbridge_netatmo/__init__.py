"""Netatmo connector: weather stations (getstationsdata) and thermostat rooms (homestatus)."""
