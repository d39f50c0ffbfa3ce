"""Reading an HTTP Retry-After header, shared by provider clients and webhook delivery."""

from __future__ import annotations

import datetime
import email.utils
import time


def parse_retry_after(header: str | None, default: float | None,
                      now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After (delta-seconds or HTTP date); ``default`` when the
    header is absent or unreadable."""
    if not header:
        return default
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return default
    if moment.tzinfo is None:  # "-0000": an HTTP date is GMT even when it fails to say so
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))
