"""MOD-003 cross-exchange spread: per-exchange VWAP per 30 s window, compared across exchanges.

For each (symbol, window) where at least two exchanges traded: spread_pct = (max_vwap − min_vwap)
/ min_vwap × 100, with the exchanges quoting the high and the low VWAP; an alert when
spread_pct > threshold (strict). Windows are event-time tumbling windows aligned to the epoch.
Streaming: two chained window aggregations in append mode (rows appear once the watermark
passes the window's end).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.common.detector import BaseDetector, ModuleConfigError


class SpreadDetector(BaseDetector):
    module_id = "MOD-003"
    module_name = "spread"
    job_name = "spread_calculator"
    defaults: ClassVar[dict[str, Any]] = {"window_s": 30, "threshold_pct": 0.5}

    def validate(self) -> None:
        if self.params["window_s"] <= 0:
            raise ModuleConfigError(f"{self.module_id}: window_s must be > 0")
        if self.params["threshold_pct"] < 0:
            raise ModuleConfigError(f"{self.module_id}: threshold_pct must be >= 0")

    def process(self, trades: DataFrame) -> DataFrame:
        duration = f"{self.params['window_s']} seconds"
        per_exchange = trades.groupBy(
            F.window("timestamp", duration).alias("window"), "symbol", "exchange"
        ).agg((F.sum(F.col("price") * F.col("quantity")) / F.sum("quantity")).alias("vwap"))
        # Re-windowing the window's own time keeps the same window and lets the second
        # aggregation follow the watermark (chained stateful operators, append mode).
        per_symbol = per_exchange.groupBy(
            F.window(F.window_time("window"), duration).alias("window"), "symbol"
        ).agg(
            F.count("exchange").cast("int").alias("exchange_count"),
            F.max("vwap").alias("max_vwap"),
            F.min("vwap").alias("min_vwap"),
            F.max_by("exchange", "vwap").alias("high_exchange"),
            F.min_by("exchange", "vwap").alias("low_exchange"),
        )
        spread_pct = (F.col("max_vwap") - F.col("min_vwap")) / F.col("min_vwap") * 100
        threshold = F.lit(float(self.params["threshold_pct"]))
        return (
            per_symbol.where(F.col("exchange_count") >= 2)
            .select(
                F.col("window.start").alias("window_start"),
                F.col("window.end").alias("window_end"),
                "symbol",
                "exchange_count",
                "max_vwap",
                "min_vwap",
                "high_exchange",
                "low_exchange",
                spread_pct.alias("spread_pct"),
            )
            .withColumn("is_alert", F.col("spread_pct") > threshold)
        )

    def alert_types(self) -> list[str]:
        return ["WIDE_SPREAD"]

    def output_table(self) -> str:
        return "spreads"

    def alerts(self, records: DataFrame) -> DataFrame:
        details = F.to_json(
            F.struct(
                "window_end",
                "exchange_count",
                "max_vwap",
                "min_vwap",
                "high_exchange",
                "low_exchange",
            )
        )
        return records.where("is_alert").select(
            F.concat(
                F.lit("spread:"),
                F.col("symbol"),
                F.lit(":"),
                F.date_format("window_start", "yyyy-MM-dd'T'HH:mm:ss'Z'"),
            ).alias("alert_id"),
            F.lit("WIDE_SPREAD").alias("alert_type"),
            "symbol",
            F.lit(None).cast("string").alias("exchange"),
            F.col("window_start").alias("event_time"),
            F.current_timestamp().alias("detected_at"),
            F.col("spread_pct").alias("metric"),
            F.lit(float(self.params["threshold_pct"])).alias("threshold"),
            details.alias("details"),
        )
