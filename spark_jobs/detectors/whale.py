"""MOD-002 whale detector (stateless): trades whose quote volume is over the threshold.

A trade is a whale when `quote_volume > threshold` (strict), the threshold being the symbol's
override or the default. Each whale is enriched with its base/quote asset, a size tier and the
threshold used; its alert id is `whale:{event_id}` (deterministic: replays dedupe).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.common import schemas
from spark_jobs.common.detector import BaseDetector, ModuleConfigError, detection_time


class WhaleDetector(BaseDetector):
    module_id = "MOD-002"
    module_name = "whale"
    job_name = "whale_detector"
    stateless = True
    defaults: ClassVar[dict[str, Any]] = {
        "threshold_quote_volume": 100_000.0,
        "per_symbol_threshold": {},
        "size_tiers": {"large": 100_000.0, "huge": 500_000.0, "colossal": 1_000_000.0},
    }

    def validate(self) -> None:
        if self.params["threshold_quote_volume"] <= 0:
            raise ModuleConfigError(f"{self.module_id}: threshold_quote_volume must be > 0")
        for symbol, value in self.params["per_symbol_threshold"].items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ModuleConfigError(
                    f"{self.module_id}: per_symbol_threshold[{symbol!r}] must be a number > 0"
                )
        tiers = self.params["size_tiers"]
        if not tiers or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in tiers.values()
        ):
            raise ModuleConfigError(f"{self.module_id}: size_tiers must map names to numbers")

    def threshold(self) -> Column:
        """The threshold that applies to each row's symbol."""
        column = F.lit(float(self.params["threshold_quote_volume"]))
        for symbol, value in self.params["per_symbol_threshold"].items():
            column = F.when(F.col("symbol") == symbol, F.lit(float(value))).otherwise(column)
        return column

    def size_tier(self) -> Column:
        """The name of the largest tier whose lower bound the quote volume reaches."""
        tiers = sorted(self.params["size_tiers"].items(), key=lambda item: float(item[1]))
        column = F.lit(tiers[0][0])
        for name, bound in tiers[1:]:
            column = F.when(F.col("quote_volume") >= float(bound), F.lit(name)).otherwise(column)
        return column

    def process(self, trades: DataFrame) -> DataFrame:
        # Built once per application (a streaming job calls this every micro-batch).
        is_whale, columns = self.columns.get("process", self._whale_columns)
        return trades.where(is_whale).select(*columns, detection_time(trades).alias("detected_at"))

    def _whale_columns(self) -> tuple[Column, list[Column]]:
        """(the whale condition, the record's columns before `detected_at`)."""
        threshold = self.threshold()
        return F.col("quote_volume") > threshold, [
            *[F.col(f.name) for f in schemas.UNIFIED_TRADE.fields],
            F.concat(F.lit("whale:"), F.col("event_id")).alias("alert_id"),
            F.split("symbol", "-").getItem(0).alias("base_asset"),
            F.split("symbol", "-").getItem(1).alias("quote_asset"),
            self.size_tier().alias("size_tier"),
            threshold.alias("threshold"),
        ]

    def alert_types(self) -> list[str]:
        return ["WHALE_TRADE"]

    def output_table(self) -> str:
        return "whale_trades"

    def alerts(self, records: DataFrame) -> DataFrame:
        details = F.to_json(
            F.struct(
                "event_id", "price", "quantity", "side", "size_tier", "base_asset", "quote_asset"
            )
        )
        return records.select(
            "alert_id",
            F.lit("WHALE_TRADE").alias("alert_type"),
            "symbol",
            "exchange",
            F.col("timestamp").alias("event_time"),
            "detected_at",
            F.col("quote_volume").alias("metric"),
            "threshold",
            details.alias("details"),
        )
