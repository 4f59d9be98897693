"""What a benchmark hands back: figures measured several times, reported by their median."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """One reported number: every run kept, the median reported. `value` None: not measured
    (`note` says why)."""

    key: str
    runs: list[float]
    unit: str
    method: str
    note: str | None = None

    @property
    def value(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None


@dataclass
class Section:
    """A group of figures plus what explains them (profiles, breakdowns), for RESULTS.md."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Per-run ratios of paired runs (interleaved runs share the machine's noise)."""
    return [n / d for n, d in zip(numerators, denominators, strict=True) if d > 0]


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
