"""Reprocessed anomalies against stored ones (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from spark_jobs.batch.comparison import compare_anomalies, format_comparison

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def anomaly(
    minute: int, z: float, exchange: str = "binance", symbol: str = "BTC-USDT", **kw: Any
) -> dict[str, Any]:
    return {
        "exchange": exchange,
        "symbol": symbol,
        "window_start": T0 + timedelta(minutes=minute),
        "z_score": z,
        "total_quote_volume": 5000.0,
        **kw,
    }


def test_matched_only_new_only_old_and_out_of_scope() -> None:
    old = [
        anomaly(12, 3.0),
        anomaly(30, 4.0),
        anomaly(5, 2.6),
        anomaly(40, 9.0),  # after the reprocessed windows
        anomaly(12, 9.0, symbol="ETH-USDT"),  # a series the reprocessing did not see
    ]
    # Spark hands back naive UTC datetimes: they match aware ones.
    naive = (T0 + timedelta(minutes=30)).replace(tzinfo=None)
    new = [
        anomaly(12, 10.5),
        {**anomaly(30, 3.5), "window_start": naive},
        anomaly(13, 8.0, exchange="coinbase"),
    ]
    scope = {
        ("binance", "BTC-USDT"): (T0, T0 + timedelta(minutes=35)),
        ("coinbase", "BTC-USDT"): (T0, T0 + timedelta(minutes=35)),
    }

    result = compare_anomalies(old, new, scope)

    assert [(c.key[2].minute, c.old_z, c.new_z, c.delta) for c in result.matched] == [
        (12, 3.0, 10.5, 7.5),  # the largest difference first
        (30, 4.0, 3.5, -0.5),
    ]
    assert [(r["exchange"], r["window_start"].minute) for r in result.only_new] == [
        ("coinbase", 13)
    ]
    assert [r["window_start"].minute for r in result.only_old] == [5]
    assert result.out_of_scope == 2


def test_without_a_scope_everything_is_compared() -> None:
    result = compare_anomalies([anomaly(40, 9.0)], [], None)
    assert (len(result.matched), len(result.only_new), len(result.only_old)) == (0, 0, 1)
    assert result.out_of_scope == 0


def test_the_report_shows_counts_and_the_top_differences() -> None:
    old = [anomaly(m, 3.0) for m in range(1, 5)] + [anomaly(50, 2.7)]
    new = [anomaly(m, 3.0 + m) for m in range(1, 5)] + [anomaly(7, 2.9, exchange="coinbase")]
    text = format_comparison(compare_anomalies(old, new), top_n=2)
    lines = text.splitlines()
    assert lines[:3] == [
        "  matched   4",
        "  only new  1  (found by the current detector, not stored)",
        "  only old  1  (stored, not found by the current detector)",
    ]
    assert "largest z-score differences (top 2):" in lines
    start = lines.index("largest z-score differences (top 2):")
    assert lines[start + 1].split() == [
        *("exchange", "symbol", "window_start"),
        *("old", "z", "new", "z", "Δz"),
    ]
    assert lines[start + 2].split() == [
        "binance",
        "BTC-USDT",
        "2026-01-01T00:04:00Z",
        "3.000",
        "7.000",
        "+4.000",
    ]
    assert lines[start + 3].split()[2:] == ["2026-01-01T00:03:00Z", "3.000", "6.000", "+3.000"]
    assert "only new (first 1):" in lines
    assert "coinbase" in lines[lines.index("only new (first 1):") + 2]
    assert "2026-01-01T00:50:00Z" in lines[lines.index("only old (first 1):") + 2]
