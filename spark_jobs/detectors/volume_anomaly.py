"""MOD-001 volume anomaly: z-score of each 60 s window's quote volume against its series' past.

Per (exchange, symbol) series and event-time tumbling window (aligned to the UTC epoch):
trade_count, total_volume (Σ quantity), total_quote_volume (Σ quote_volume), vwap
(Σ price·qty / Σ qty), min_price, max_price. The window's total_quote_volume is scored against
the **preceding** `baseline_windows` windows of that series — windows without trades count as 0
from the series' first window on; the current window is never in its own baseline:
z = (v − mean) / sample std, only with ≥ `min_baseline_windows` baseline windows and std > 0;
an anomaly when z > `z_threshold` (strict).

One pure core (`SeriesState.close`) serves both paths, so a backtest and the stream agree:
- streaming: `transformWithStateInPandas` keyed by series, holding the open windows and the last
  `baseline_windows` values; an event-time timer closes each window once the watermark passes
  its end (late rows for a closed window are dropped and counted by Spark's watermark filter);
- static: `applyInPandas` per series over all its rows, closing windows in time order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming.stateful_processor import (
    ExpiredTimerInfo,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StructField,
    StructType,
)

from spark_jobs.common import schemas
from spark_jobs.common.detector import BaseDetector, ModuleConfigError

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported where it is used: Spark unpickles the processor in a Python process of the
# driver at every query start (to learn its state's schema), which needs no pandas (~0.45 s).

# What the detector emits per closed window: the aggregate plus its score.
VOLUME_RECORD = StructType(
    [
        *schemas.WINDOWED_AGGREGATE.fields,
        StructField("baseline_mean", DoubleType(), True),
        StructField("baseline_std", DoubleType(), True),
        StructField("baseline_windows", IntegerType(), False),
        StructField("z_score", DoubleType(), True),
        StructField("threshold", DoubleType(), False),
        StructField("is_alert", BooleanType(), False),
    ]
)
AGGREGATE_COLUMNS = [f.name for f in schemas.WINDOWED_AGGREGATE.fields]
ANOMALY_COLUMNS = [f.name for f in schemas.ANOMALY_ALERT.fields]


@dataclass
class WindowTotals:
    """Running sums of one window (mergeable, so rows may arrive in any order and batch)."""

    trade_count: int = 0
    total_volume: float = 0.0
    total_quote_volume: float = 0.0
    price_volume: float = 0.0  # Σ price·qty, for the VWAP
    min_price: float = math.inf
    max_price: float = -math.inf

    def merge(self, other: WindowTotals) -> None:
        self.trade_count += other.trade_count
        self.total_volume += other.total_volume
        self.total_quote_volume += other.total_quote_volume
        self.price_volume += other.price_volume
        self.min_price = min(self.min_price, other.min_price)
        self.max_price = max(self.max_price, other.max_price)

    def as_tuple(self) -> tuple[int, float, float, float, float, float]:
        return (
            self.trade_count,
            self.total_volume,
            self.total_quote_volume,
            self.price_volume,
            self.min_price,
            self.max_price,
        )

    @classmethod
    def from_tuple(cls, values: tuple[Any, ...]) -> WindowTotals:
        return cls(int(values[0]), *(float(v) for v in values[1:6]))


@dataclass(frozen=True)
class Score:
    baseline_mean: float | None
    baseline_std: float | None
    baseline_windows: int
    z_score: float | None
    is_alert: bool


@dataclass
class SeriesState:
    """One series' memory: the last `baseline_windows` window values and where they end."""

    history: list[float] = field(default_factory=list)
    last_end_ms: int | None = None

    def close(
        self,
        window_start_ms: int,
        window_ms: int,
        value: float,
        baseline_windows: int,
        min_baseline_windows: int,
        z_threshold: float,
    ) -> Score:
        """Score the window that starts at `window_start_ms`, then remember it."""
        if self.last_end_ms is not None:
            silent = (window_start_ms - self.last_end_ms) // window_ms
            self.history.extend([0.0] * min(max(silent, 0), baseline_windows))
        baseline = self.history[-baseline_windows:]
        n = len(baseline)
        mean = sum(baseline) / n if n else None
        std = None
        if n >= 2 and mean is not None:
            std = math.sqrt(sum((x - mean) ** 2 for x in baseline) / (n - 1))
        z = None
        if n >= min_baseline_windows and std is not None and std > 0 and mean is not None:
            z = (value - mean) / std
        self.history = [*baseline, value][-baseline_windows:]
        self.last_end_ms = window_start_ms + window_ms
        return Score(mean, std, n, z, z is not None and z > z_threshold)


def _epoch_ms(column: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_datetime(column, utc=True).astype("int64") // 1_000_000


def _record(
    exchange: str,
    symbol: str,
    start_ms: int,
    window_ms: int,
    totals: WindowTotals,
    score: Score,
    threshold: float,
) -> dict[str, Any]:
    import pandas as pd

    return {
        "window_start": pd.Timestamp(start_ms, unit="ms", tz="UTC"),
        "window_end": pd.Timestamp(start_ms + window_ms, unit="ms", tz="UTC"),
        "symbol": symbol,
        "exchange": exchange,
        "trade_count": totals.trade_count,
        "total_volume": totals.total_volume,
        "total_quote_volume": totals.total_quote_volume,
        "vwap": totals.price_volume / totals.total_volume,
        "min_price": totals.min_price,
        "max_price": totals.max_price,
        "baseline_mean": score.baseline_mean,
        "baseline_std": score.baseline_std,
        "baseline_windows": score.baseline_windows,
        "z_score": score.z_score,
        "threshold": threshold,
        "is_alert": score.is_alert,
    }


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(records, columns=[f.name for f in VOLUME_RECORD.fields])


def window_totals(rows: pd.DataFrame, window_ms: int) -> dict[int, WindowTotals]:
    """Trades (`timestamp`, `price`, `quantity`, `quote_volume`) -> their windows' totals, by
    window start (ms). Vectorized: one grouping per batch, not a Python call per trade."""
    import pandas as pd

    if rows.empty:
        return {}
    event_ms = _epoch_ms(rows["timestamp"])
    price, quantity = rows["price"].astype("float64"), rows["quantity"].astype("float64")
    columns = pd.DataFrame(
        {
            "price": price,
            "quantity": quantity,
            "quote": rows["quote_volume"].astype("float64"),
            "price_volume": price * quantity,
        }
    )
    # One aggregation: one frame, its columns in `WindowTotals`' order.
    totals = columns.groupby((event_ms - event_ms % window_ms).to_numpy(), sort=False).agg(
        trade_count=("price", "size"),
        total_volume=("quantity", "sum"),
        total_quote_volume=("quote", "sum"),
        price_volume=("price_volume", "sum"),
        min_price=("price", "min"),
        max_price=("price", "max"),
    )
    return {
        int(start): WindowTotals(
            int(n), float(volume), float(quote), float(pv), float(lo), float(hi)
        )
        for start, n, volume, quote, pv, lo, hi in totals.itertuples(name=None)
    }


def score_series(rows: pd.DataFrame, p: dict[str, Any]) -> pd.DataFrame:
    """The static path: every window of one series, closed in time order."""
    window_ms = int(p["window_s"]) * 1000
    exchange, symbol = str(rows["exchange"].iloc[0]), str(rows["symbol"].iloc[0])
    series = SeriesState()
    records = []
    for start, totals in sorted(window_totals(rows, window_ms).items()):
        score = series.close(
            start,
            window_ms,
            totals.total_quote_volume,
            int(p["baseline_windows"]),
            int(p["min_baseline_windows"]),
            float(p["z_threshold"]),
        )
        records.append(
            _record(exchange, symbol, start, window_ms, totals, score, float(p["z_threshold"]))
        )
    return _frame(records)


# A series' state: one value, read and written once per call (each state call is a round trip
# to the JVM's state server). `open_windows`: (start ms, `WindowTotals.as_tuple()`...) of the
# windows not closed yet.
SERIES_STATE = StructType(
    [
        StructField("last_end_ms", LongType(), True),
        StructField("history", ArrayType(DoubleType(), False), False),
        StructField(
            "open_windows",
            ArrayType(
                StructType(
                    [
                        StructField("window_start_ms", LongType(), False),
                        StructField("trade_count", LongType(), False),
                        StructField("total_volume", DoubleType(), False),
                        StructField("total_quote_volume", DoubleType(), False),
                        StructField("price_volume", DoubleType(), False),
                        StructField("min_price", DoubleType(), False),
                        StructField("max_price", DoubleType(), False),
                    ]
                ),
                False,
            ),
            False,
        ),
    ]
)


@dataclass
class StoredSeries:
    """A series' state between micro-batches: the scored past and the open windows."""

    series: SeriesState = field(default_factory=SeriesState)
    open: dict[int, WindowTotals] = field(default_factory=dict)

    @classmethod
    def load(cls, stored: tuple[Any, ...] | None) -> StoredSeries:
        if stored is None:
            return cls()
        last_end, history, windows = stored
        return cls(
            SeriesState(list(history), last_end),
            {int(w[0]): WindowTotals.from_tuple(tuple(w[1:])) for w in windows},
        )

    def dump(self) -> tuple[Any, ...]:
        return (
            self.series.last_end_ms,
            list(self.series.history),
            [(start, *totals.as_tuple()) for start, totals in sorted(self.open.items())],
        )


class VolumeSeriesProcessor(StatefulProcessor):
    """transformWithStateInPandas processor, keyed by series (exchange, symbol).

    Each open window has an event-time timer at its end. The first of a series' timers to
    expire in a micro-batch closes, in time order, every window whose timer expires in that
    batch too (end before the watermark, or the timer's own), and writes the state once; the
    other timers then find their window closed. Every call reads and writes the series' state at
    most once."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.window_ms = int(params["window_s"]) * 1000
        self.baseline_windows = int(params["baseline_windows"])
        self.min_baseline = int(params["min_baseline_windows"])
        self.threshold = float(params["z_threshold"])

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.state = handle.getValueState("series", SERIES_STATE)

    def handleInputRows(  # noqa: N802 - Spark's API names
        self,
        key: Any,
        rows: Iterator[pd.DataFrame],
        timerValues: TimerValues,  # noqa: N803
    ) -> Iterator[pd.DataFrame]:
        stored = StoredSeries.load(self.state.get())
        last_end = stored.series.last_end_ms
        for batch in rows:
            for start, totals in window_totals(batch, self.window_ms).items():
                if last_end is not None and start + self.window_ms <= last_end:
                    continue  # that window was already scored: too late to change it
                existing = stored.open.get(start)
                if existing is None:
                    stored.open[start] = totals
                    self.handle.registerTimer(start + self.window_ms)
                else:
                    existing.merge(totals)
        self.state.update(stored.dump())
        yield from ()

    def handleExpiredTimer(  # noqa: N802 - Spark's API names
        self,
        key: Any,
        timerValues: TimerValues,  # noqa: N803
        expiredTimerInfo: ExpiredTimerInfo,  # noqa: N803
    ) -> Iterator[pd.DataFrame]:
        exchange, symbol = key
        expired_end = expiredTimerInfo.getExpiryTimeInMs()
        watermark = timerValues.getCurrentWatermarkInMs()
        stored = StoredSeries.load(self.state.get())
        # Timers expire in this batch when they are before the watermark (or at it, Spark's
        # rule decides): every window that ends before it, and this timer's own window.
        due = sorted(
            start
            for start in stored.open
            if start + self.window_ms < watermark or start + self.window_ms == expired_end
        )
        if not due:
            return  # closed by an earlier timer of this batch
        records = []
        for start in due:
            totals = stored.open.pop(start)
            score = stored.series.close(
                start,
                self.window_ms,
                totals.total_quote_volume,
                self.baseline_windows,
                self.min_baseline,
                self.threshold,
            )
            records.append(
                _record(exchange, symbol, start, self.window_ms, totals, score, self.threshold)
            )
        self.state.update(stored.dump())
        yield _frame(records)

    def close(self) -> None:
        pass


class VolumeAnomalyDetector(BaseDetector):
    module_id = "MOD-001"
    module_name = "volume_anomaly"
    job_name = "volume_anomaly"
    defaults: ClassVar[dict[str, Any]] = {
        "window_s": 60,
        "baseline_windows": 60,
        "min_baseline_windows": 10,
        "z_threshold": 2.5,
    }

    def validate(self) -> None:
        p = self.params
        if p["window_s"] <= 0:
            raise ModuleConfigError(f"{self.module_id}: window_s must be > 0")
        if not 2 <= p["min_baseline_windows"] <= p["baseline_windows"]:
            raise ModuleConfigError(
                f"{self.module_id}: need 2 <= min_baseline_windows <= baseline_windows"
            )

    def process(self, trades: DataFrame) -> DataFrame:
        columns = trades.select(
            "exchange", "symbol", "timestamp", "price", "quantity", "quote_volume"
        )
        grouped = columns.groupBy("exchange", "symbol")
        if trades.isStreaming:
            return grouped.transformWithStateInPandas(
                statefulProcessor=VolumeSeriesProcessor(self.params),
                outputStructType=VOLUME_RECORD,
                outputMode="Append",
                timeMode="EventTime",
            )
        params = dict(self.params)

        def score(rows: pd.DataFrame) -> pd.DataFrame:  # a plain function: Spark counts args
            return score_series(rows, params)

        return grouped.applyInPandas(score, VOLUME_RECORD)

    def alert_types(self) -> list[str]:
        return ["VOLUME_SPIKE"]

    def output_table(self) -> str:
        return "anomalies"

    def outputs(self, records: DataFrame) -> dict[str, DataFrame]:
        return {
            "volume_aggregates": records.select(*AGGREGATE_COLUMNS),
            "anomalies": self.anomalies(records),
        }

    def anomalies(self, records: DataFrame) -> DataFrame:
        alert_id = F.concat_ws(
            ":",
            F.lit("volume_anomaly"),
            "exchange",
            "symbol",
            F.date_format("window_start", "yyyy-MM-dd'T'HH:mm:ss'Z'"),
        )
        return records.where("is_alert").select(
            alert_id.alias("alert_id"),
            "symbol",
            "exchange",
            "window_start",
            "window_end",
            "total_quote_volume",
            "baseline_mean",
            "baseline_std",
            "baseline_windows",
            "z_score",
            "threshold",
            F.current_timestamp().alias("detected_at"),
        )

    def alerts(self, records: DataFrame) -> DataFrame:
        anomalies = self.anomalies(records)
        details = F.to_json(
            F.struct(
                "window_end",
                "total_quote_volume",
                "baseline_mean",
                "baseline_std",
                "baseline_windows",
            )
        )
        return anomalies.select(
            "alert_id",
            F.lit("VOLUME_SPIKE").alias("alert_type"),
            "symbol",
            "exchange",
            F.col("window_start").alias("event_time"),
            "detected_at",
            F.col("z_score").alias("metric"),
            "threshold",
            details.alias("details"),
        )
