"""Message-broker publishers, built from the ``EVENT_BROKERS`` setting.

``EVENT_BROKERS`` is a comma-separated list of URLs (``amqp://``, ``redis://``, ``mqtt://`` and
their TLS variants). Each becomes one publisher whose ``name`` is the URL without its password:
the name keys the publisher's cursors, so changing a password keeps its progress while
pointing it at another broker, exchange, stream or prefix starts it from the oldest retained
event. Publishers are kept per process so their connections serve many batches.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from thingbridge.outbox.publishers.base import Publisher, redact

SCHEMES = {
    "amqp": "amqp", "amqps": "amqp",
    "redis": "redis", "rediss": "redis",
    "mqtt": "mqtt", "mqtts": "mqtt",
}
NAME_MAX = 200  # PublisherCursor.publisher

_open: dict[str, Publisher] = {}


def parse(setting: str | None) -> list[str]:
    """The setting's URLs, checked: an unknown scheme or a duplicate is a configuration error."""
    urls = [url.strip() for url in (setting or "").split(",") if url.strip()]
    names = set()
    for url in urls:
        scheme = urlsplit(url).scheme
        if scheme not in SCHEMES:
            raise ValueError(f"EVENT_BROKERS: unsupported scheme {scheme!r} in {redact(url)} "
                             f"(use one of {', '.join(sorted(SCHEMES))})")
        name = redact(url)
        if len(name) > NAME_MAX:
            raise ValueError(f"EVENT_BROKERS: URL longer than {NAME_MAX} characters: {name}")
        if name in names:
            raise ValueError(f"EVENT_BROKERS: {name} is configured twice")
        names.add(name)
    return urls


def configured_names(setting: str | None) -> list[str]:
    return [redact(url) for url in parse(setting)]


def build(url: str) -> Publisher:
    # Imported on use: a process without that kind of broker never loads its client library.
    kind = SCHEMES[urlsplit(url).scheme]
    if kind == "amqp":
        from thingbridge.outbox.publishers.amqp import AmqpPublisher
        return AmqpPublisher(url)
    if kind == "redis":
        from thingbridge.outbox.publishers.redis_streams import RedisStreamPublisher
        return RedisStreamPublisher(url)
    from thingbridge.outbox.publishers.mqtt import MqttPublisher
    return MqttPublisher(url)


def configured(setting: str | None) -> dict[str, Publisher]:
    """This process's publishers for the setting, by name, created once and then reused."""
    found = {}
    for url in parse(setting):
        if url not in _open or _open[url].abandoned:
            _open[url] = build(url)
        found[_open[url].name] = _open[url]
    return found


# A broker whose attempt failed in this process is not tried by it again for a while: each
# (broker, app) pair would cost an attempt of its own, up to base.ATTEMPT, and a broker that
# does not answer took the worker processes that polls and webhooks share. The pause doubles
# while it keeps failing, up to a minute.
_failing: dict[str, tuple[float, float, str]] = {}  # name -> (until, pause, why)
FIRST_PAUSE, LONGEST_PAUSE = 2.0, 60.0


def failing(name: str) -> str | None:
    """Why this process does not try ``name`` now, or None."""
    until, _, why = _failing.get(name, (0.0, 0.0, ""))
    return why if time.monotonic() < until else None


def failed(name: str, why: str) -> None:
    _, pause, _ = _failing.get(name, (0.0, FIRST_PAUSE / 2, ""))
    pause = min(pause * 2, LONGEST_PAUSE)
    _failing[name] = (time.monotonic() + pause, pause, why)


def succeeded(name: str) -> None:
    _failing.pop(name, None)


def close_all() -> None:
    _failing.clear()
    while _open:
        _open.popitem()[1].close()
