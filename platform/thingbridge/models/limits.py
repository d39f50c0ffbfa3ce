"""Per-app fair-share counters (README "Running it safely")."""

from __future__ import annotations

from peewee import CharField, DateTimeField, IntegerField

from thingbridge.models.base import BaseModel


class RateWindow(BaseModel):
    """Requests counted against one limit (``key``: what and whose) in its current minute."""

    key = CharField(max_length=300, primary_key=True)
    window_start = DateTimeField()
    used = IntegerField(default=0)
