"""Column expressions built once per Spark application instead of once per micro-batch.

Building a `Column` is a Py4J round trip per function call: the quality checks' metrics are
~100 of them, a detector's enrichment tens more, each micro-batch. A `Column` is an unresolved
expression, valid with any DataFrame of its application, so a job keeps the ones it builds for
every batch (a new application, e.g. a test session restarted, builds them again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pyspark import SparkContext

T = TypeVar("T")


class ColumnCache:
    """`get(key, build)`: `build()`'s result, built once per key and Spark application."""

    def __init__(self) -> None:
        self._application: str | None = None
        self._built: dict[str, object] = {}

    def get(self, key: str, build: Callable[[], T]) -> T:
        context = SparkContext._active_spark_context
        application = context.applicationId if context is not None else None
        if application is None or application != self._application:
            self._built = {}
            self._application = application
        if key not in self._built:
            self._built[key] = build()
        return self._built[key]  # type: ignore[return-value]
