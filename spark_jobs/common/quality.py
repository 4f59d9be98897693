"""Data quality: configured checks as Column expressions, per-batch metrics (SPEC §6.2).

A check is a name, a severity and a condition that is TRUE when the row is good. Conditions are
null-safe by construction: a condition that is false *or null* (unknown) counts as failed, so a
row with a missing price fails `validity_price_positive` as well as `completeness_price`.

- ERROR checks send the row to the DLQ; its `reason` is the **first failed ERROR check in the
  configured order** (`default_checks`: parse, completeness, validity). `failed_checks` lists every
  failed ERROR check in that order.
- A `gate` check (`parse_json`) short-circuits: when it fails, the checks after it are not
  reported, since they would only repeat that nothing could be read.
- WARN checks are counted and the row is kept. They are evaluated on rows that passed every
  ERROR check only (a row without a timestamp is incomplete, not late); `warnings` is empty on
  DLQ rows.

`annotate` is pure Column expressions: the streaming jobs annotate the stream once, in its plan
(the processing time is then the micro-batch's time, so a replayed batch gets the same verdicts),
and each micro-batch of the quality query is `split` into valid rows, DLQ rows and metrics. A
backtest (a static DataFrame) is annotated and split in one call, `validate`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Literal, Protocol

from py4j.protocol import Py4JError
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, LongType, StringType

from spark_jobs.common.columns import ColumnCache
from spark_jobs.common.settings import JobSettings
from spark_jobs.common.trades import JSON_OK, RAW, TRADE_COLUMNS

Severity = Literal["ERROR", "WARN"]
# A SQL expression, or a function building the Column (called when a DataFrame is annotated:
# building a Column needs a running Spark, building a checker does not).
Condition = str | Callable[[], Column]

FAILED_CHECKS = "failed_checks"
WARNINGS = "warnings"
# The processing time as a column while checks are evaluated: conditions may refer to it.
PROCESSED_AT = "_processed_at"
# The WARN check whose failures are `records_late`.
LATE_CHECK = "timeliness_recent"

_INFINITY = float("inf")
# How long `measure(scanned=True)` waits for observed metrics before aggregating instead.
OBSERVATION_WAIT_S = 5.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One quality rule. `condition` is TRUE for a good row; false or null fails the check."""

    name: str
    severity: Severity
    condition: Condition
    gate: bool = False
    description: str = ""

    def passed(self) -> Column:
        condition = self.condition
        column = F.expr(condition) if isinstance(condition, str) else condition()
        return F.coalesce(column, F.lit(False))


@dataclass(frozen=True)
class QualityMetrics:
    """One batch's numbers. Invariant: processed = passed + failed (checked on construction).

    `quality_score_pct` = passed / processed × 100, and 100.0 for an empty batch (nothing bad
    was seen; the CloudWatch publisher leaves QualityScore out for empty batches).
    `failures_by_check` has every configured check: rows that failed it (WARN checks: among the
    passed rows).
    """

    records_processed: int
    records_passed: int
    records_failed: int
    records_late: int
    quality_score_pct: float
    failures_by_check: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.records_processed != self.records_passed + self.records_failed:
            raise ValueError(
                f"quality metrics broke processed = passed + failed: {self.records_processed} != "
                f"{self.records_passed} + {self.records_failed}"
            )

    @classmethod
    def from_counts(
        cls, processed: int, passed: int, late: int, failures_by_check: dict[str, int]
    ) -> QualityMetrics:
        score = 100.0 * passed / processed if processed else 100.0
        return cls(processed, passed, processed - passed, late, score, failures_by_check)


def _positive_finite(name: str) -> Callable[[], Column]:
    # NaN compares greater than +inf in Spark SQL, so `< inf` rejects both.
    return lambda: (F.col(name) > 0) & (F.col(name) < F.lit(_INFINITY))


def default_checks(settings: JobSettings) -> list[Check]:
    """SPEC §6.2's checks, in order (the order decides a DLQ row's `reason`)."""
    symbols = sorted(settings.symbols)
    exchanges = list(settings.exchanges)
    max_age_s = settings.quality.max_age_s
    tolerance = settings.quality.quote_volume_tolerance

    def recent() -> Column:
        oldest = F.col(PROCESSED_AT) - F.expr(f"INTERVAL {max_age_s} SECONDS")
        return F.col("timestamp") >= oldest

    def consistent() -> Column:
        expected = F.col("price") * F.col("quantity")
        deviation = F.try_divide(F.abs(F.col("quote_volume") - expected), F.abs("quote_volume"))
        return deviation < F.lit(tolerance)

    return [
        Check("parse_json", "ERROR", JSON_OK, gate=True, description="a JSON object of the schema"),
        Check("completeness_event_id", "ERROR", "event_id IS NOT NULL AND trim(event_id) != ''"),
        Check("completeness_symbol", "ERROR", "symbol IS NOT NULL"),
        Check("completeness_price", "ERROR", "price IS NOT NULL"),
        Check("completeness_quantity", "ERROR", "quantity IS NOT NULL"),
        Check("completeness_timestamp", "ERROR", "timestamp IS NOT NULL", description="ISO 8601"),
        Check("validity_price_positive", "ERROR", _positive_finite("price")),
        Check("validity_quantity_positive", "ERROR", _positive_finite("quantity")),
        Check("validity_symbol_allowed", "ERROR", lambda: F.col("symbol").isin(symbols)),
        Check("validity_exchange_allowed", "ERROR", lambda: F.col("exchange").isin(exchanges)),
        Check(LATE_CHECK, "WARN", recent, description=f"timestamp at most {max_age_s} s old"),
        Check("consistency_quote_volume", "WARN", consistent, description=f"within {tolerance}"),
    ]


class Measure(Protocol):
    """`split`'s third result: the batch's metrics; `scanned=True` when an action has already
    read the whole batch through the valid or the DLQ rows (then no aggregation runs)."""

    def __call__(self, scanned: bool = False) -> QualityMetrics: ...


class DataQualityChecker:
    """The configured checks of one job. Input: `trades.PARSED_COLUMNS` (stream or static)."""

    def __init__(
        self, settings: JobSettings, job: str, checks: Sequence[Check] | None = None
    ) -> None:
        self.settings = settings
        self.job = job
        self.checks: tuple[Check, ...] = tuple(
            default_checks(settings) if checks is None else checks
        )
        names = [check.name for check in self.checks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"quality checks named twice: {duplicates}")
        bad = [c.name for c in self.checks if c.severity not in ("ERROR", "WARN")]
        if bad:
            raise ValueError(f"quality checks with a severity other than ERROR/WARN: {bad}")
        self._cached: DataFrame | None = None
        self._columns = ColumnCache()

    @property
    def error_checks(self) -> list[str]:
        return [check.name for check in self.checks if check.severity == "ERROR"]

    @property
    def warn_checks(self) -> list[str]:
        return [check.name for check in self.checks if check.severity == "WARN"]

    def annotate(self, df: DataFrame, now: datetime | None = None) -> DataFrame:
        """`df` + `failed_checks array<string>` (ERROR) + `warnings array<string>` (WARN).

        Pure Column expressions: works on a streaming DataFrame. The processing time is
        `current_timestamp()` (the micro-batch's time) unless `now` pins it.
        """
        processed_at = F.lit(now).cast("timestamp") if now is not None else F.current_timestamp()
        failed: list[tuple[Check, Column]] = []
        gate_failed: Column = F.lit(False)
        for check in self.checks:
            failed.append((check, ~check.passed() & ~gate_failed))
            if check.gate:
                gate_failed = gate_failed | ~check.passed()

        none = F.array().cast(ArrayType(StringType(), containsNull=False))

        def names(severity: Severity) -> Column:
            # Each failed check adds a one-name array. (Not `array_compact` of the names and
            # nulls: it is a lambda function, which Spark evaluates row by row without generated
            # code, and with it every check's expression: the checks cost 2-4x more.)
            flagged = [
                F.when(flag, F.array(F.lit(c.name))).otherwise(none)
                for c, flag in failed
                if c.severity == severity
            ]
            return F.concat(*flagged) if flagged else none

        errors = names("ERROR")
        warnings = F.when(F.size(errors) == 0, names("WARN")).otherwise(none)
        return (
            df.withColumn(PROCESSED_AT, processed_at)
            .withColumn(FAILED_CHECKS, errors)
            .withColumn(WARNINGS, warnings)
            .drop(PROCESSED_AT)
        )

    def validate(
        self,
        df: DataFrame,
        batch_id: int = 0,
        now: datetime | None = None,
        keep: Sequence[str] = (),
    ) -> tuple[DataFrame, DataFrame, QualityMetrics]:
        """A static batch -> (valid rows, DLQ rows, metrics), the metrics in one aggregation.

        - valid: the `schemas.UNIFIED_TRADE` columns (then the `keep` columns of `df`) of rows
          with no failed ERROR check (WARN rows included);
        - invalid: `schemas.DLQ_RECORD` rows (`raw`, `event_id`, `failed_checks`, `reason`, `job`
          = this checker's job, `batch_id`; a backtest is batch 0).

        The processing time is pinned (`now`, default: the wall clock at the call) so that every
        action on the results sees the same verdicts. The annotated batch is cached until the
        next `validate`/`split` or `release()`, so the DLQ and the sinks do not re-read it.
        """
        annotated = self.annotate(df, now or datetime.now(UTC))
        valid, invalid, measure = self.split(annotated, batch_id, keep, cache=True)
        return valid, invalid, measure()

    def split(
        self,
        annotated: DataFrame,
        batch_id: int = 0,
        keep: Sequence[str] = (),
        cache: bool = False,
    ) -> tuple[DataFrame, DataFrame, Measure]:
        """An `annotate`d batch -> (valid rows, DLQ rows, a function that measures the batch),
        as `validate` describes them. Nothing runs yet.

        The batch's metrics are observed (`DataFrame.observe`): an action that reads the whole
        batch through the valid or the DLQ rows computes them on the way, and `measure(scanned=
        True)` then takes them instead of running an aggregation of its own. `cache` keeps the
        annotated batch (until the next `split` or `release()`) for callers that read it often;
        a micro-batch is read once or twice, and caching it costs more than it saves.
        """
        self.release()
        if cache:
            annotated = annotated.persist(StorageLevel.MEMORY_AND_DISK)
            self._cached = annotated
        observation = Observation(f"quality_{uuid.uuid4().hex}")
        observed = annotated.observe(observation, *self._metric_columns())
        passed, failed, dlq_columns = self._columns.get("split", self._split_columns)
        valid = observed.where(passed).select(*TRADE_COLUMNS, *keep)
        invalid = observed.where(failed).select(
            *dlq_columns, F.lit(batch_id).cast(LongType()).alias("batch_id")
        )
        return valid, invalid, partial(self._measure, observed, observation)

    def _split_columns(self) -> tuple[Column, Column, list[Column]]:
        """(passed, failed, the DLQ columns but `batch_id`)."""
        passed = F.size(FAILED_CHECKS) == 0
        return (
            passed,
            ~passed,
            [
                F.col(RAW),
                F.col("event_id"),
                F.col(FAILED_CHECKS),
                F.element_at(FAILED_CHECKS, 1).alias("reason"),
                F.lit(self.job).alias("job"),
            ],
        )

    def release(self) -> None:
        """Drop the cached batch of the last `validate` (the next `validate` does it too)."""
        if self._cached is not None:
            self._cached.unpersist()
            self._cached = None

    def _metric_columns(self) -> list[Column]:
        """Every number of a batch, as aggregations (one pass)."""
        return self._columns.get("metrics", self._build_metric_columns)

    def _build_metric_columns(self) -> list[Column]:
        per_check = [
            F.count_if(
                F.array_contains(
                    FAILED_CHECKS if check.severity == "ERROR" else WARNINGS, check.name
                )
            ).alias(f"check_{index}")
            for index, check in enumerate(self.checks)
        ]
        late = F.array_contains(WARNINGS, LATE_CHECK) if LATE_CHECK in self.warn_checks else None
        return [
            F.count(F.lit(1)).alias("processed"),
            F.count_if(F.size(FAILED_CHECKS) == 0).alias("passed"),
            F.count_if(late if late is not None else F.lit(False)).alias("late"),
            *per_check,
        ]

    def _measure(
        self, observed: DataFrame, observation: Observation, scanned: bool = False
    ) -> QualityMetrics:
        """The batch's metrics: observed, when the caller says an action has read the whole
        batch (`scanned`), else (or if the observation does not arrive) one aggregation."""
        values: Mapping[str, int] | None = None
        if scanned:
            values = observed_metrics(observation, OBSERVATION_WAIT_S)
            if values is None:
                log.warning(
                    "quality metrics of %s were not observed within %s s: aggregating",
                    self.job,
                    OBSERVATION_WAIT_S,
                )
        if values is None:
            row = observed.agg(*self._metric_columns()).first()
            assert row is not None  # a global aggregation always has one row
            values = {name: int(value) for name, value in row.asDict().items()}
        failures = {check.name: int(values[f"check_{i}"]) for i, check in enumerate(self.checks)}
        return QualityMetrics.from_counts(
            int(values["processed"]), int(values["passed"]), int(values["late"]), failures
        )


def observed_metrics(
    observation: Observation, wait_s: float, sleep: Callable[[float], None] = time.sleep
) -> dict[str, int] | None:
    """An observation's (integer) metrics once the query that computed them has reported (Spark
    delivers them on its listener bus, a moment after the action returns); None if they have
    not arrived within `wait_s` or the query failed. (`Observation.get` would block for ever on
    a batch no action read, and reads the map entry by entry over Py4J: ~90 ms a batch.)"""
    future = observation._jo.future() if observation._jo is not None else None
    if future is None:
        return None
    deadline = time.monotonic() + wait_s
    while not future.isCompleted():
        if time.monotonic() >= deadline:
            return None
        sleep(0.002)
    try:
        # Option[Try[Map[String, Any]]] -> "name -> value" lines, in one call.
        text = future.value().get().get().mkString("\n")
    except Py4JError:
        return None
    return parse_observed(text)


def parse_observed(text: str) -> dict[str, int]:
    """Scala's `Map.mkString("\n")` of integer metrics -> {name: value}."""
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" -> ")
        values[name] = int(value)
    return values
