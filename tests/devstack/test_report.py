"""The demo's HTML report: self-contained, charts that say what they show."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from devstack.report import Band, Chart, Marker, Series, html_table, render_report, svg_chart

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def minutes(values: list[float]) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(minutes=i), v) for i, v in enumerate(values)]


def texts(svg: str) -> list[str]:
    root = ElementTree.fromstring(svg)
    return [el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}text")]


def titles(svg: str) -> list[str]:
    root = ElementTree.fromstring(svg)
    return [el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}title")]


def test_a_chart_is_valid_svg_with_its_series_markers_threshold_and_bands() -> None:
    chart = Chart(
        title="Spread",
        y_label="spread (%)",
        series=[Series("ETH-USDT", minutes([0.05, 0.1, 1.2, 1.1, 0.04]), "#2ca02c")],
        markers=[Marker(T0 + timedelta(minutes=2), 1.2, "ETH-USDT 09:02: 1.20 %", text="1.20 %")],
        hline=(0.5, "threshold 0.5 %"),
        bands=[
            Band(T0 + timedelta(minutes=2), T0 + timedelta(minutes=4), "scripted dislocation"),
            Band(T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), "scripted gap"),
        ],
    )
    svg = svg_chart(chart)
    shown = texts(svg)
    assert "■ ETH-USDT" in shown
    assert "1.20 %" in shown
    assert "threshold 0.5 %" in shown
    assert {"scripted dislocation", "scripted gap"} <= set(shown)
    assert "ETH-USDT 09:02: 1.20 %" in titles(svg)  # the tooltip
    assert {"09:00", "09:01", "09:02", "09:03", "09:04"} <= set(shown)
    # Two bands' labels are not drawn on top of each other.
    ys = re.findall(r'<text x="[\d.]+" y="([\d.]+)" font-size="10"', svg)
    assert len(set(ys)) == 2


def test_tick_labels_tell_close_prices_apart() -> None:
    chart = Chart(
        title="ETH",
        y_label="price",
        series=[Series("ETH-USDT VWAP", minutes([2991.0, 3004.5, 3011.2]), "#000")],
        y_from_zero=False,
    )
    labels = [t for t in texts(svg_chart(chart)) if re.fullmatch(r"[\d,.]+", t)]
    assert len(labels) >= 3
    assert len(set(labels)) == len(labels), labels
    assert "3,000" in labels


def test_a_log_axis_spans_the_decades_and_leaves_out_zero() -> None:
    chart = Chart(
        title="Volume",
        y_label="quote volume",
        series=[Series("binance BTC-USDT", minutes([0.0, 900.0, 5_000.0, 1_300_000.0]), "#f0b")],
        log_y=True,
    )
    shown = texts(svg_chart(chart))
    assert {"100", "1k", "10k", "100k", "1M"} <= set(shown)
    points = re.search(r'points="([^"]+)"', svg_chart(chart))
    assert points is not None
    assert len(points[1].split()) == 3


def test_an_empty_chart_says_so() -> None:
    assert "no data" in svg_chart(Chart(title="x", y_label="y", series=[]))


def test_the_page_is_self_contained_and_escapes_text() -> None:
    page = render_report(
        "demo <report>",
        ["alerts: whale 5"],
        [Chart(title="Whales & prices", y_label="p", series=[Series("s", minutes([1, 2]), "#1")])],
        [("Top whales", html_table(["who", "size"], [("<script>", 1)]))],
    )
    assert page.startswith("<!doctype html>")
    assert "demo &lt;report&gt;" in page
    assert "&lt;script&gt;" in page
    assert "<script>" not in page
    assert "Whales &amp; prices" in page
    assert not re.search(r'(src|href)="https?://', page)  # nothing fetched from the network
    assert page.count("<svg") == 1
    assert "<li>alerts: whale 5</li>" in page
