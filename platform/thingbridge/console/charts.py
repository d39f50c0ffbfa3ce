"""The overview's two charts as geometry for inline SVG: no chart library, nothing fetched."""

from __future__ import annotations

from dataclasses import dataclass

from thingbridge.connectors.service import FRESHNESS

FRESHNESS_LABELS = {"1x": "within 1× interval", "2x": "within 2×", "10x": "within 10×",
                    "older": "longer ago", "never": "never"}
FRESHNESS_TONES = {"1x": "ok", "2x": "ok2", "10x": "wait", "older": "bad", "never": "none"}


@dataclass
class Bar:
    label: str
    value: int
    tone: str
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0


def freshness_bars(counts: dict[str, int], width: float = 200.0,
                   row: float = 22.0) -> list[Bar]:
    """One horizontal bar per bucket, the longest ``width`` wide."""
    top = max(counts.values(), default=0) or 1
    return [Bar(FRESHNESS_LABELS[key], counts.get(key, 0), FRESHNESS_TONES[key],
                y=i * row, width=width * counts.get(key, 0) / top, height=row - 6)
            for i, key in enumerate(FRESHNESS)]


@dataclass
class Column:
    label: str
    succeeded: Bar
    failed: Bar


def poll_columns(bars: list[tuple], width: float = 330.0,
                 height: float = 110.0) -> list[Column]:
    """Stacked columns (succeeded below, failed above) for (start, succeeded, failed) rows."""
    top = max((ok + failed for _, ok, failed in bars), default=0) or 1
    step = width / max(len(bars), 1)
    columns = []
    for i, (start, ok, failed) in enumerate(bars):
        ok_h, failed_h = height * ok / top, height * failed / top
        x = i * step + 2
        columns.append(Column(
            start.strftime("%H:%M"),
            Bar("succeeded", ok, "ok", x, height - ok_h, step - 4, ok_h),
            Bar("failed", failed, "bad", x, height - ok_h - failed_h, step - 4, failed_h)))
    return columns
