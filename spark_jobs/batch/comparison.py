"""Reprocessed anomalies against the stored ones (pure: rows in, a comparison and its text out).

An anomaly is identified by its series and window, `(exchange, symbol, window_start)` (what its
deterministic `alert_id` encodes). Stored anomalies outside the windows the reprocessing saw
(a series it had no trades of, a window before its first or after its last) are counted apart:
the run could not have found them, so they are neither matched nor "only old".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Key = tuple[str, str, datetime]  # exchange, symbol, window_start (UTC)
Series = tuple[str, str]  # exchange, symbol
# Per series, the first and last window start the reprocessing scored.
Scope = Mapping[Series, tuple[datetime, datetime]]


def utc(moment: datetime) -> datetime:
    """Aware UTC (Spark hands back naive datetimes in the session zone, UTC here)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def anomaly_key(row: Mapping[str, Any]) -> Key:
    return (str(row["exchange"]), str(row["symbol"]), utc(row["window_start"]))


@dataclass(frozen=True)
class ZScoreChange:
    key: Key
    old_z: float
    new_z: float

    @property
    def delta(self) -> float:
        return self.new_z - self.old_z


@dataclass(frozen=True)
class AnomalyComparison:
    matched: tuple[ZScoreChange, ...]  # largest |Δz| first
    only_new: tuple[Mapping[str, Any], ...]  # found now, not stored (in window order)
    only_old: tuple[Mapping[str, Any], ...]  # stored, not found now (in window order)
    out_of_scope: int  # stored anomalies outside the reprocessed windows


def in_scope(key: Key, scope: Scope | None) -> bool:
    if scope is None:
        return True
    bounds = scope.get((key[0], key[1]))
    if bounds is None:
        return False
    first, last = utc(bounds[0]), utc(bounds[1])
    return first <= key[2] <= last


def compare_anomalies(
    old: Iterable[Mapping[str, Any]],
    new: Iterable[Mapping[str, Any]],
    scope: Scope | None = None,
) -> AnomalyComparison:
    """Match `new` (reprocessed) against `old` (stored) anomalies by series and window;
    `scope` (None: everything) limits which stored anomalies are compared."""
    new_by_key = {anomaly_key(row): row for row in new}
    old_by_key: dict[Key, Mapping[str, Any]] = {}
    out_of_scope = 0
    for row in old:
        key = anomaly_key(row)
        if in_scope(key, scope):
            old_by_key[key] = row
        else:
            out_of_scope += 1
    matched = [
        ZScoreChange(key, float(old_by_key[key]["z_score"]), float(new_by_key[key]["z_score"]))
        for key in new_by_key.keys() & old_by_key.keys()
    ]
    matched.sort(key=lambda change: (-abs(change.delta), change.key))
    return AnomalyComparison(
        matched=tuple(matched),
        only_new=tuple(new_by_key[k] for k in sorted(new_by_key.keys() - old_by_key.keys())),
        only_old=tuple(old_by_key[k] for k in sorted(old_by_key.keys() - new_by_key.keys())),
        out_of_scope=out_of_scope,
    )


def _when(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        (
            "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        ).rstrip()
        for row in (header, *rows)
    ]


def format_comparison(comparison: AnomalyComparison, top_n: int = 10) -> str:
    """The comparison as text: the counts, the largest z-score differences, then the anomalies
    found on one side only (at most `top_n` rows each)."""
    c = comparison
    lines = [
        f"  matched   {len(c.matched)}",
        f"  only new  {len(c.only_new)}  (found by the current detector, not stored)",
        f"  only old  {len(c.only_old)}  (stored, not found by the current detector)",
        f"  stored anomalies outside the reprocessed windows (not compared): {c.out_of_scope}",
    ]
    header = ["exchange", "symbol", "window_start"]
    if c.matched:
        lines.append(f"largest z-score differences (top {min(top_n, len(c.matched))}):")
        rows = [
            [
                *change.key[:2],
                _when(change.key[2]),
                f"{change.old_z:.3f}",
                f"{change.new_z:.3f}",
                f"{change.delta:+.3f}",
            ]
            for change in c.matched[:top_n]
        ]
        lines += _table([*header, "old z", "new z", "Δz"], rows)
    for title, side in (("only new", c.only_new), ("only old", c.only_old)):
        if side:
            lines.append(f"{title} (first {min(top_n, len(side))}):")
            rows = [
                [
                    *map(str, anomaly_key(row)[:2]),
                    _when(anomaly_key(row)[2]),
                    f"{float(row['z_score']):.3f}",
                    f"{float(row['total_quote_volume']):.2f}",
                ]
                for row in side[:top_n]
            ]
            lines += _table([*header, "z", "quote volume"], rows)
    return "\n".join(lines)
