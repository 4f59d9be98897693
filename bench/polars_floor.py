"""The single-machine compute floor: the whale and volume computations in plain polars, on the
same trades (the same JSON records the jobs read), with the same module parameters
(config/features.yaml). No streaming, no state store, no sinks: what the arithmetic costs on
this machine when one library does all of it in memory.
"""

from __future__ import annotations

import io
import time
from typing import Any

from bench.measure import Figure, Section
from producer.batching import Record
from spark_jobs.common.registry import load_registry


def _schema(pl: Any) -> dict[str, Any]:
    return {
        "event_id": pl.String,
        "exchange": pl.String,
        "symbol": pl.String,
        "price": pl.Float64,
        "quantity": pl.Float64,
        "quote_volume": pl.Float64,
        "side": pl.String,
        "timestamp": pl.String,
        "ingestion_timestamp": pl.String,
    }


def read_trades(pl: Any, blob: bytes) -> Any:
    """JSON lines -> a DataFrame with the times as UTC datetimes (µs)."""
    frame = pl.read_ndjson(io.BytesIO(blob), schema=_schema(pl))
    return frame.with_columns(
        pl.col("timestamp").str.to_datetime(time_unit="us", time_zone="UTC"),
        pl.col("ingestion_timestamp").str.to_datetime(time_unit="us", time_zone="UTC"),
    )


def whales(pl: Any, trades: Any, params: dict[str, Any]) -> Any:
    """MOD-002: trades over the threshold, enriched as `WhaleDetector.process` does."""
    threshold = pl.lit(float(params["threshold_quote_volume"]))
    for symbol, value in params["per_symbol_threshold"].items():
        threshold = pl.when(pl.col("symbol") == symbol).then(float(value)).otherwise(threshold)
    tiers = sorted(params["size_tiers"].items(), key=lambda item: float(item[1]))
    tier = pl.lit(tiers[0][0])
    for name, bound in tiers[1:]:
        tier = pl.when(pl.col("quote_volume") >= float(bound)).then(pl.lit(name)).otherwise(tier)
    parts = pl.col("symbol").str.split("-")
    return (
        trades.with_columns(threshold.alias("threshold"))
        .filter(pl.col("quote_volume") > pl.col("threshold"))
        .with_columns(
            (pl.lit("whale:") + pl.col("event_id")).alias("alert_id"),
            parts.list.get(0).alias("base_asset"),
            parts.list.get(1).alias("quote_asset"),
            tier.alias("size_tier"),
            pl.lit(time.time()).alias("detected_at"),
        )
    )


def volume(pl: Any, trades: Any, params: dict[str, Any]) -> Any:
    """MOD-001: per-series windows, each scored against the preceding `baseline_windows`
    windows (silent windows count as 0 from the series' first window), as `SeriesState`."""
    every = f"{int(params['window_s'])}s"
    baseline = int(params["baseline_windows"])
    series = ["exchange", "symbol"]
    windows = trades.group_by(
        *series, pl.col("timestamp").dt.truncate(every).alias("window_start")
    ).agg(
        pl.len().alias("trade_count"),
        pl.col("quantity").sum().alias("total_volume"),
        pl.col("quote_volume").sum().alias("total_quote_volume"),
        (pl.col("price") * pl.col("quantity")).sum().alias("price_volume"),
        pl.col("price").min().alias("min_price"),
        pl.col("price").max().alias("max_price"),
    )
    grid = (
        windows.group_by(series)
        .agg(
            pl.datetime_ranges(
                pl.col("window_start").min(), pl.col("window_start").max(), every
            ).alias("window_start")
        )
        .explode("window_start")
    )
    value = pl.col("total_quote_volume")
    previous = value.shift(1).over(series)
    scored = (
        grid.join(windows, on=[*series, "window_start"], how="left")
        .with_columns(value.fill_null(0.0))
        .sort([*series, "window_start"])
        .with_columns(
            previous.rolling_mean(baseline, min_samples=1).over(series).alias("baseline_mean"),
            previous.rolling_std(baseline, min_samples=2).over(series).alias("baseline_std"),
            previous.is_not_null()
            .cast(pl.Int32)
            .rolling_sum(baseline, min_samples=1)
            .over(series)
            .fill_null(0)
            .alias("baseline_windows"),
        )
    )
    usable = (pl.col("baseline_windows") >= int(params["min_baseline_windows"])) & (
        pl.col("baseline_std") > 0
    )
    z = pl.when(usable).then((value - pl.col("baseline_mean")) / pl.col("baseline_std"))
    return (
        scored.filter(pl.col("trade_count").is_not_null())
        .with_columns(z.alias("z_score"))
        .with_columns(
            (pl.col("z_score") > float(params["z_threshold"])).fill_null(False).alias("is_alert")
        )
    )


def run_floor(section: Section, records: list[Record], repeat: int) -> None:
    """`polars_whale_events_per_s` and `polars_volume_events_per_s` (parse + compute)."""
    try:
        import polars as pl
    except ImportError as exc:
        note = f"polars is not importable ({exc}); see `make bench`'s pip output"
        for key in ("polars_whale_events_per_s", "polars_volume_events_per_s"):
            section.add(Figure(key, [], "", "", note=note))
        return
    registry = load_registry()
    whale_params = registry.by_job("whale_detector").params
    volume_params = registry.by_job("volume_anomaly").params
    blob = b"".join(r.data + b"\n" for r in records)
    count = len(records)
    whale_s: list[float] = []
    volume_s: list[float] = []
    found: dict[str, int] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        found["whales"] = whales(pl, read_trades(pl, blob), whale_params).height
        whale_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        scored = volume(pl, read_trades(pl, blob), volume_params)
        found["volume_windows"] = scored.height
        found["volume_anomalies"] = int(scored["is_alert"].sum())
        volume_s.append(time.perf_counter() - start)
    method = (
        f"polars {pl.__version__} on the same {count:,} JSON records the jobs read, with the "
        "modules' parameters from config/features.yaml: `read_ndjson` + ISO times parsed, then"
    )
    section.add(
        Figure(
            "polars_whale_events_per_s",
            [count / s for s in whale_s],
            "events/s",
            f"{method} the whale filter and enrichment (found {found['whales']} whales).",
        )
    )
    section.add(
        Figure(
            "polars_volume_events_per_s",
            [count / s for s in volume_s],
            "events/s",
            f"{method} 60 s windows per series scored against the preceding windows "
            f"({found['volume_windows']} windows, {found['volume_anomalies']} anomalies).",
        )
    )
    section.details["polars_found"] = found
