from __future__ import annotations

from typing import Any, ClassVar

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.common.detector import BaseDetector, ModuleConfigError


class BigTradeDetector(BaseDetector):
    module_id = "MOD-900"
    module_name = "big_trade"
    job_name = "big_trade"
    defaults: ClassVar[dict[str, Any]] = {"threshold": 10.0, "label": "big", "strict": True}

    def validate(self) -> None:
        if self.params["threshold"] <= 0:
            raise ModuleConfigError(f"{self.module_id}: threshold must be > 0")

    def process(self, trades: DataFrame) -> DataFrame:
        return trades.where(F.col("quote_volume") > self.params["threshold"])

    def alert_types(self) -> list[str]:
        return ["WHALE_TRADE"]

    def output_table(self) -> str:
        return "whale_trades"

    def alerts(self, records: DataFrame) -> DataFrame:
        return records


class TinyTradeDetector(BigTradeDetector):
    module_id = "MOD-901"
    module_name = "tiny_trade"
    job_name = "tiny_trade"
