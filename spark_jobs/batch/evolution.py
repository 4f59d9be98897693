"""Pure pieces of the schema evolution demo: data-file lists compared, rows and files as text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, order=True)
class DataFile:
    """One data file of a table, as its manifests list it."""

    path: str
    size_bytes: int
    records: int


@dataclass(frozen=True)
class FileDiff:
    kept: tuple[DataFile, ...]  # same path, same size, same record count
    changed: tuple[tuple[DataFile, DataFile], ...]  # same path, different size or count
    removed: tuple[DataFile, ...]
    added: tuple[DataFile, ...]

    @property
    def untouched(self) -> bool:
        """Every file of before is still there, unchanged (before ⊆ after)."""
        return not self.changed and not self.removed


def diff_files(before: Iterable[DataFile], after: Iterable[DataFile]) -> FileDiff:
    old = {f.path: f for f in before}
    new = {f.path: f for f in after}
    return FileDiff(
        kept=tuple(sorted(old[p] for p in old.keys() & new.keys() if old[p] == new[p])),
        changed=tuple(
            sorted((old[p], new[p]) for p in old.keys() & new.keys() if old[p] != new[p])
        ),
        removed=tuple(sorted(old[p] for p in old.keys() - new.keys())),
        added=tuple(sorted(new[p] for p in new.keys() - old.keys())),
    )


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def text_table(header: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "  ") -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(c) for c in column) for column in zip(header, *cells, strict=True)]
    return "\n".join(
        (indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))).rstrip()
        for row in (list(header), *cells)
    )


def rows_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    return text_table(columns, ([row.get(c) for c in columns] for row in rows))


def files_table(diff: FileDiff, root: str = "") -> str:
    """Every file after the change with its status (kept / added; changed / removed if any)."""

    def short(path: str) -> str:
        return path.removeprefix(root).lstrip("/")

    rows: list[tuple[str, int, int, str]] = [
        *(("kept", f.records, f.size_bytes, short(f.path)) for f in diff.kept),
        *(("CHANGED", n.records, n.size_bytes, short(n.path)) for _, n in diff.changed),
        *(("REMOVED", f.records, f.size_bytes, short(f.path)) for f in diff.removed),
        *(("added", f.records, f.size_bytes, short(f.path)) for f in diff.added),
    ]
    return text_table(("status", "records", "bytes", "path"), rows)
