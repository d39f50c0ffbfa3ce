"""How the pages write times, durations and statuses (Jinja filters)."""

from __future__ import annotations

import datetime

from thingbridge.console import bp
from thingbridge.db import utcnow

# Status words -> the badge colour class the stylesheet defines.
TONES = {"STARTED": "ok", "DELIVERED": "ok", "COMPLETED": "ok", "AVAILABLE": "ok",
         "STARTING": "wait", "PENDING": "wait", "UNKNOWN": "wait",
         "ERROR": "bad", "DEAD": "bad", "FAILED": "bad", "CANCELED": "bad",
         "UNAVAILABLE": "bad"}


def utc(moment: datetime.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never"


def seconds(value: float | None) -> str:
    """3 s, 4 min, 2 h, 3 d: one unit, rounded down."""
    if value is None:
        return ""
    value = abs(value)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= size:
            return f"{int(value // size)} {unit}"
    return f"{value:.1f} s" if value < 10 else f"{int(value)} s"


def relative(moment: datetime.datetime | None) -> str:
    """"4 min ago" or "in 2 min"."""
    if moment is None:
        return "never"
    delta = (moment - utcnow()).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {seconds(delta)}" if delta > 0 else f"{seconds(delta)} ago"


def latency(request) -> str:
    """An action request's time from trigger to its final status (empty while PENDING)."""
    if request.status == "PENDING":
        return ""
    return seconds((request.updated_at - request.created_at).total_seconds())


def tone(status: str | None) -> str:
    return TONES.get(status or "", "wait")


for _name, _function in (("utc", utc), ("relative", relative), ("seconds", seconds),
                         ("latency", latency), ("tone", tone)):
    bp.add_app_template_filter(_function, _name)
