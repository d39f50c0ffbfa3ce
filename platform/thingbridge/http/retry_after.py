"""Reading an HTTP Retry-After header, shared by provider clients and webhook delivery."""

from __future__ import annotations

import datetime
import email.utils
import math
import time

# The longest wait a Retry-After gets: a provider or receiver asking for longer (a year, or
# "inf") is asked again after a day rather than parking the work for good.
MAX_RETRY_AFTER = 86400.0


def parse_retry_after(header: str | None, default: float | None,
                      now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After (delta-seconds or HTTP date), at most a day;
    ``default`` when the header is absent or unreadable."""
    if not header:
        return default
    try:
        seconds = float(header)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return default
        if moment.tzinfo is None:  # "-0000": an HTTP date is GMT even when it fails to say so
            moment = moment.replace(tzinfo=datetime.UTC)
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return default
    return min(max(0.0, seconds), MAX_RETRY_AFTER)
