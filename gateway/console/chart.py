"""Bar-and-line charts' geometry (throughput, reports), computed here and drawn as inline SVG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.console.i18n import DISPLAY_TZ
from gateway.console.stats import HourCount

WIDTH = 720
HEIGHT = 240
MARGIN_LEFT = 44
MARGIN_RIGHT = 12
MARGIN_TOP = 12
MARGIN_BOTTOM = 28
Y_TICKS = 4
LABEL_EVERY_H = 3
MAX_X_LABELS = 12


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str  # the hour, in Vietnam's time


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Received per hour as bars, delivered per hour as a line, with both axes."""

    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    bars: tuple[Bar, ...]
    points: tuple[Point, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is >= ``value`` (at least 4)."""
    if value <= Y_TICKS:
        return Y_TICKS
    power = int(10 ** int(math.log10(value)))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def throughput_chart(hours: Sequence[HourCount]) -> Chart:
    """Received per hour (bars) and delivered per hour (line), labelled every three hours."""
    return series_chart(
        [(h.hour.astimezone(DISPLAY_TZ).strftime("%H:00"), h.received, h.delivered) for h in hours],
        label_every=LABEL_EVERY_H,
    )


def series_chart(series: Sequence[tuple[str, int, int]], *, label_every: int = 0) -> Chart:
    """Geometry for ``(label, bar value, line value)`` slots in a ``WIDTH`` x ``HEIGHT`` box;
    ``label_every`` 0 labels about a dozen slots."""
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    top_value = nice_ceiling(max((max(b, v) for _, b, v in series), default=0))
    slot = (right - left) / max(len(series), 1)
    every = label_every or max(1, math.ceil(len(series) / MAX_X_LABELS))

    def y_of(value: int) -> float:
        return bottom - (bottom - top) * value / top_value

    bars, points, x_ticks = [], [], []
    for i, (label, bar, value) in enumerate(series):
        x = left + i * slot
        bars.append(Bar(x + slot * 0.15, y_of(bar), slot * 0.7, bottom - y_of(bar), bar, label))
        points.append(Point(x + slot / 2, y_of(value), value, label))
        if i % every == 0:
            x_ticks.append(Tick(x + slot / 2, label))
    y_ticks = tuple(
        Tick(y_of(top_value * k // Y_TICKS), str(top_value * k // Y_TICKS))
        for k in range(Y_TICKS + 1)
    )
    return Chart(
        WIDTH, HEIGHT, left, right, top, bottom, tuple(bars), tuple(points), y_ticks, tuple(x_ticks)
    )
