"""The detector module contract (SPEC §6.0): a new detector is a class plus a config entry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.common.columns import ColumnCache

# A column the runner adds to a stateless detector's trades: the micro-batch's time, taken in the
# streaming plan (where `current_timestamp()` is the batch time recorded in the offset log, so a
# replayed batch gets the same time). In a `foreachBatch` handler `current_timestamp()` would be
# the time of each action instead, and a replay would detect the same alert at another time.
BATCH_TIME = "_batch_time"


def detection_time(trades: DataFrame) -> Column:
    """When a record of `trades` is detected: the micro-batch's time (`BATCH_TIME`) when the
    runner provides it, else `current_timestamp()` (a streaming plan's batch time; a backtest's
    query time)."""
    return F.col(BATCH_TIME) if BATCH_TIME in trades.columns else F.current_timestamp()


class ModuleConfigError(ValueError):
    """A module entry in the features configuration is invalid; the message names it."""


class BaseDetector(ABC):
    """A detector: pure DataFrame -> DataFrame logic, the same on a static DataFrame (backtest,
    unit tests) and a streaming one.

    `process` turns valid trades (with a watermark on `timestamp` when streaming) into the
    detector's records; `outputs` splits a batch of those records into table rows;
    `alerts` gives the batch's alerts in the shape of `schemas.ALERT`.
    """

    module_id: ClassVar[str]  # e.g. "MOD-002"
    module_name: ClassVar[str]  # e.g. "whale"
    job_name: ClassVar[str]  # the entry script and checkpoint name, e.g. "whale_detector"
    # Structured Streaming output mode of `process` (windowed aggregations emit on watermark).
    output_mode: ClassVar[Literal["append", "update", "complete"]] = "append"
    # True when `process` keeps no state between micro-batches (no window, no watermark): the
    # runner then detects inside the quality query's batches instead of a second query, so the
    # stream is read and validated once per batch.
    stateless: ClassVar[bool] = False
    # Parameter name -> default; `configure` accepts exactly these keys.
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self) -> None:
        self.params: dict[str, Any] = dict(self.defaults)
        # Column expressions a detector builds from its parameters, kept across micro-batches.
        self.columns = ColumnCache()

    def configure(self, config: Mapping[str, Any]) -> None:
        """Take the module's parameters; unknown names and wrong types fail naming them."""
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            raise ModuleConfigError(
                f"{self.module_id}: unknown parameter(s) {unknown}; known: {sorted(self.defaults)}"
            )
        params = dict(self.defaults)
        for name, value in config.items():
            default = self.defaults[name]
            params[name] = _coerce(self.module_id, name, value, default)
        self.params = params
        self.columns = ColumnCache()  # built from the old parameters
        self.validate()

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check parameter values (ranges, relations); raise ModuleConfigError naming them."""

    @abstractmethod
    def process(self, trades: DataFrame) -> DataFrame:
        """Valid unified trades -> this detector's records."""

    @abstractmethod
    def alert_types(self) -> list[str]:
        """The `alert_type` values this detector emits (schemas.ALERT_TYPES)."""

    @abstractmethod
    def output_table(self) -> str:
        """The Iceberg table of this detector's primary output."""

    def outputs(self, records: DataFrame) -> dict[str, DataFrame]:
        """A batch of records -> rows per table (default: all of them to `output_table`)."""
        return {self.output_table(): records}

    @abstractmethod
    def alerts(self, records: DataFrame) -> DataFrame:
        """A batch of records -> the alerts among them, shaped like `schemas.ALERT`."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _coerce(module_id: str, name: str, value: Any, default: Any) -> Any:
    """Values from YAML or SSM take the type of the default (an int where a float is fine)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = _is_number(value)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ModuleConfigError(
            f"{module_id}: parameter {name!r} must be {type(default).__name__}, got {value!r}"
        )
    return value
