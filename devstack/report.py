"""The demo's report: one self-contained HTML file with inline SVG charts (no libraries, no
network): per-minute volume with the anomalies marked, the spread over time with its threshold,
and the whales on the price line. Pure: data in, text out."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

WIDTH, HEIGHT = 900, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 20, 20, 40
COLORS = {"binance": "#f0b90b", "coinbase": "#1652f0", "alert": "#d62728", "threshold": "#888"}


@dataclass
class Series:
    name: str
    points: list[tuple[datetime, float]]
    color: str


@dataclass
class Marker:
    at: datetime
    value: float
    label: str
    color: str = COLORS["alert"]
    radius: float = 5.0


@dataclass
class Chart:
    title: str
    y_label: str
    series: list[Series]
    markers: list[Marker] = field(default_factory=list)
    hline: tuple[float, str] | None = None  # (value, label), e.g. a threshold


def _scale(value: float, low: float, high: float, out_low: float, out_high: float) -> float:
    if high == low:
        return (out_low + out_high) / 2
    return out_low + (value - low) * (out_high - out_low) / (high - low)


def _fmt(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:.1f}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.0f}"


def svg_chart(chart: Chart) -> str:
    """One line chart as an SVG element."""
    xs = [p[0].timestamp() for s in chart.series for p in s.points]
    xs += [m.at.timestamp() for m in chart.markers]
    ys = [p[1] for s in chart.series for p in s.points] + [m.value for m in chart.markers]
    if chart.hline:
        ys.append(chart.hline[0])
    if not xs:
        return f'<svg width="{WIDTH}" height="60"><text x="10" y="30">no data</text></svg>'
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = min(0.0, min(ys)), max(ys) * 1.08 or 1.0
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM

    def x(t: float) -> float:
        return _scale(t, x_low, x_high, left, right)

    def y(v: float) -> float:
        return _scale(v, y_low, y_high, bottom, top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{html.escape(chart.title)}">'
    ]
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>')
    for i in range(5):
        value = y_low + (y_high - y_low) * i / 4
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{_fmt(value)}</text>'
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
    if chart.hline:
        value, label = chart.hline
        parts.append(
            f'<line x1="{left}" y1="{y(value):.1f}" x2="{right}" y2="{y(value):.1f}" '
            f'stroke="{COLORS["threshold"]}" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{right - 4}" y="{y(value) - 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="{COLORS["threshold"]}">{html.escape(label)}</text>'
        )
    for legend, series in enumerate(chart.series):
        points = sorted(series.points)
        path = " ".join(f"{x(p[0].timestamp()):.1f},{y(p[1]):.1f}" for p in points)
        parts.append(
            f'<polyline fill="none" stroke="{series.color}" stroke-width="1.5" points="{path}"/>'
        )
        parts.append(
            f'<text x="{left + 10 + 110 * legend}" y="{top + 4}" font-size="12" '
            f'fill="{series.color}">■ {html.escape(series.name)}</text>'
        )
    for marker in chart.markers:
        parts.append(
            f'<circle cx="{x(marker.at.timestamp()):.1f}" cy="{y(marker.value):.1f}" '
            f'r="{marker.radius}" fill="{marker.color}" fill-opacity="0.8">'
            f"<title>{html.escape(marker.label)}</title></circle>"
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
