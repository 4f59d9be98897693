"""The demo's report: one self-contained HTML file with inline SVG charts (no libraries, no
network): per-minute volume with the anomalies marked, the spread over time with its threshold,
and the whales on the price line. Pure: data in, text out.

A `Chart` is line series, point markers (with a tooltip and an optional text label), an optional
horizontal line (a threshold) and shaded time bands (e.g. the scripted events); its y axis starts
at zero unless `y_from_zero` is off (prices), and may be logarithmic (`log_y`, volumes spanning
decades)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

WIDTH, HEIGHT = 900, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 20, 20, 40
COLORS = {"binance": "#f0b90b", "coinbase": "#1652f0", "alert": "#d62728", "threshold": "#888"}
BAND_COLOR = "#9467bd"


@dataclass
class Series:
    name: str
    points: list[tuple[datetime, float]]
    color: str


@dataclass
class Marker:
    at: datetime
    value: float
    label: str  # the tooltip
    color: str = COLORS["alert"]
    radius: float = 5.0
    text: str | None = None  # drawn beside the marker


@dataclass
class Band:
    """A shaded time range, labelled at its top (e.g. a scripted event)."""

    start: datetime
    end: datetime
    label: str
    color: str = BAND_COLOR


@dataclass
class Chart:
    title: str
    y_label: str
    series: list[Series]
    markers: list[Marker] = field(default_factory=list)
    hline: tuple[float, str] | None = None  # (value, label), e.g. a threshold
    bands: list[Band] = field(default_factory=list)
    y_from_zero: bool = True
    log_y: bool = False  # values <= 0 are left out


def _scale(value: float, low: float, high: float, out_low: float, out_high: float) -> float:
    if high == low:
        return (out_low + out_high) / 2
    return out_low + (value - low) * (out_high - out_low) / (high - low)


def _decimals(step: float) -> int:
    """Decimals that tell ticks `step` apart (steps are 1, 2 or 5 times a power of ten)."""
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _fmt(value: float, step: float | None = None) -> str:
    """A tick label: 1.5M, 250k, 2,995, 0.25; precise enough to tell ticks `step` apart
    (default: the value's own magnitude, for decade ticks)."""
    step = step or abs(value) or 1.0
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size and step >= size / 10:
            return f"{value / size:.{_decimals(step / size)}f}{unit}"
    return f"{value:,.{_decimals(step)}f}"


def _nice_step(span: float, count: int = 5) -> float:
    """The 1-2-5 step giving about `count` ticks over `span`."""
    raw = span / count if span > 0 else 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * 0.999)


def _linear_ticks(low: float, high: float) -> tuple[list[float], float]:
    step = _nice_step(high - low)
    first = math.ceil(low / step - 1e-9)
    ticks: list[float] = []
    while (tick := (first + len(ticks)) * step) <= high + step * 1e-9:
        ticks.append(tick)
    return ticks, step


def _y_range(values: list[float], from_zero: bool) -> tuple[float, float]:
    low, high = min(values), max(values)
    if from_zero:
        return min(0.0, low), high * 1.08 or 1.0
    pad = (high - low) * 0.08 or abs(high) * 0.01 or 1.0
    return low - pad, high + pad


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 steps between 10**low and 10**high (exponents), at most about eight."""
    ticks = []
    for exponent in range(math.floor(low), math.ceil(high) + 1):
        for step in (1, 2, 5) if high - low <= 3 else (1,):
            value = math.log10(step) + exponent
            if low <= value <= high:
                ticks.append(value)
    return ticks


def svg_chart(chart: Chart) -> str:
    """One line chart as an SVG element."""
    log_y = chart.log_y

    def keep(value: float) -> bool:
        return value > 0 or not log_y

    def level(value: float) -> float:
        return math.log10(value) if log_y else value

    series = [
        Series(s.name, [(t, level(v)) for t, v in s.points if keep(v)], s.color)
        for s in chart.series
    ]
    markers = [m for m in chart.markers if keep(m.value)]
    hline = chart.hline if chart.hline and keep(chart.hline[0]) else None
    xs = [p[0].timestamp() for s in series for p in s.points]
    xs += [m.at.timestamp() for m in markers]
    ys = [p[1] for s in series for p in s.points] + [level(m.value) for m in markers]
    if hline:
        ys.append(level(hline[0]))
    if not xs:
        return f'<svg width="{WIDTH}" height="60"><text x="10" y="30">no data</text></svg>'
    x_low, x_high = min(xs), max(xs)
    if log_y:
        y_low, y_high = float(math.floor(min(ys))), max(ys) + 0.1
    else:
        y_low, y_high = _y_range(ys, chart.y_from_zero)
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM

    def x(t: float) -> float:
        return _scale(t, x_low, x_high, left, right)

    def y(v: float) -> float:
        return _scale(v, y_low, y_high, bottom, top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" style="max-width:{WIDTH}px" '
        f'role="img" aria-label="{html.escape(chart.title)}">'
    ]
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>')
    for index, band in enumerate(chart.bands):
        start = max(x(band.start.timestamp()), left)
        end = min(x(band.end.timestamp()), right)
        if end <= start:
            continue
        parts.append(
            f'<rect x="{start:.1f}" y="{top}" width="{end - start:.1f}" '
            f'height="{bottom - top}" fill="{band.color}" fill-opacity="0.12">'
            f"<title>{html.escape(band.label)}</title></rect>"
        )
        parts.append(
            f'<text x="{start + 3:.1f}" y="{top + 26 + 12 * index}" font-size="10" '
            f'fill="{band.color}">{html.escape(band.label)}</text>'
        )
    if log_y:
        y_ticks, step = _log_ticks(y_low, y_high), None
    else:
        y_ticks, step = _linear_ticks(y_low, y_high)
    for value in y_ticks:
        shown = _fmt(10**value) if log_y else _fmt(value, step)
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{shown}</text>'
        )
        parts.append(
            f'<line x1="{left}" y1="{y(value):.1f}" x2="{right}" y2="{y(value):.1f}" '
            'stroke="#eee"/>'
        )
    for i in range(5):
        t = x_low + (x_high - x_low) * i / 4
        label = datetime.fromtimestamp(t, UTC).strftime("%H:%M")
        parts.append(
            f'<text x="{x(t):.1f}" y="{bottom + 16}" font-size="11" '
            f'text-anchor="middle">{label}</text>'
        )
    parts.append(
        f'<text x="14" y="{(top + bottom) / 2:.0f}" font-size="11" '
        f'transform="rotate(-90 14 {(top + bottom) / 2:.0f})" text-anchor="middle">'
        f"{html.escape(chart.y_label)}</text>"
    )
    if hline:
        value, label = level(hline[0]), hline[1]
        parts.append(
            f'<line x1="{left}" y1="{y(value):.1f}" x2="{right}" y2="{y(value):.1f}" '
            f'stroke="{COLORS["threshold"]}" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{right - 4}" y="{y(value) - 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="{COLORS["threshold"]}">{html.escape(label)}</text>'
        )
    legend_x = left + 10
    for line in series:
        points = sorted(line.points)
        path = " ".join(f"{x(p[0].timestamp()):.1f},{y(p[1]):.1f}" for p in points)
        parts.append(
            f'<polyline fill="none" stroke="{line.color}" stroke-width="1.5" points="{path}"/>'
        )
        parts.append(
            f'<text x="{legend_x}" y="{top + 4}" font-size="12" '
            f'fill="{line.color}">■ {html.escape(line.name)}</text>'
        )
        legend_x += 30 + 7 * len(line.name)
    for marker in markers:
        cx, cy = x(marker.at.timestamp()), y(level(marker.value))
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" '
            f'r="{marker.radius}" fill="{marker.color}" fill-opacity="0.8">'
            f"<title>{html.escape(marker.label)}</title></circle>"
        )
        if marker.text:
            # About 6.5 px a character at 11 px: a label that would pass the right edge goes left.
            anchor = "end" if cx + marker.radius + 3 + 6.5 * len(marker.text) > right else "start"
            dx = -(marker.radius + 3) if anchor == "end" else marker.radius + 3
            parts.append(
                f'<text x="{cx + dx:.1f}" y="{cy - 3:.1f}" font-size="11" '
                f'text-anchor="{anchor}" fill="{marker.color}">{html.escape(marker.text)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(
    title: str, summary: Sequence[str], charts: Sequence[Chart], tables: Sequence[tuple[str, str]]
) -> str:
    """The whole page: a summary list, the charts, then titled tables (already HTML)."""
    style = (
        "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:960px}"
        "h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;"
        "padding:4px 8px;text-align:right}th{background:#f4f4f4}li{margin:2px 0}"
    )
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary)
    figures = "".join(f"<h2>{html.escape(c.title)}</h2>{svg_chart(c)}" for c in charts)
    sections = "".join(f"<h2>{html.escape(name)}</h2>{body}" for name, body in tables)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1><ul>{items}</ul>"
        f"{figures}{sections}</body></html>"
    )
