"""The Python worker daemon of the jobs' local sessions: pyspark's own (`pyspark.daemon`), with
cheap import-cache invalidation (`spark.python.daemon.module`, set by `session.build_session`).

Why: every Python task starts with `importlib.invalidate_caches()`
(`pyspark.worker_util.setup_spark_files`), and on Python 3.10 and 3.11 that makes the zip importer
of every archive on the path read its whole directory again, in Python: Spark's core jar
(`spark-core_*.jar`, 5 000+ entries, no Python in it) and `pyspark.zip`, once per importer of
each package imported from it. On the benchmark machine that was 0.3-0.45 s of CPU per task, and
every micro-batch of a job runs Python tasks (the Kinesis source, the volume detector's pandas
state): most of a small batch's time.

So, before pyspark's daemon starts (the workers it forks inherit both):
- Spark's jars leave the import path (nothing is imported from them);
- a zip importer re-reads its archive only when the file changed since it last read it (the
  archives are installed files; a `--py-files` archive replaced under the same name is re-read).

The JVM runs `python -m <this module> <worker module>`; pyspark's daemon reads the worker module
from the same `sys.argv`.
"""

from __future__ import annotations

import os
import sys
import zipimport
from collections.abc import Callable, MutableMapping, MutableSequence
from typing import Any

Signature = tuple[int, int]


def drop_jars(path: MutableSequence[str], importers: MutableMapping[str, Any]) -> list[str]:
    """Remove JVM archives (`*.jar`) from an import path and its importer cache; returns them."""
    jars = [entry for entry in path if entry.endswith(".jar")]
    path[:] = [entry for entry in path if not entry.endswith(".jar")]
    for entry in [key for key in importers if key.endswith(".jar")]:
        del importers[entry]
    return jars


def signature(archive: str) -> Signature | None:
    """What says an archive changed: (mtime ns, size); None if it cannot be read."""
    try:
        stat = os.stat(archive)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def invalidate_when_changed(
    reread: Callable[[Any], None],
    seen: dict[str, Signature] | None = None,
    stat: Callable[[str], Signature | None] = signature,
) -> Callable[[Any], None]:
    """A `zipimporter.invalidate_caches` that calls `reread` (the original) only for an archive
    it has not seen yet or whose signature changed since."""
    known: dict[str, Signature] = {} if seen is None else seen

    def invalidate_caches(importer: Any) -> None:
        archive = importer.archive
        now = stat(archive)
        if now is not None and known.get(archive) == now:
            return
        reread(importer)
        if now is not None:
            known[archive] = now

    return invalidate_caches


def main() -> None:
    drop_jars(sys.path, sys.path_importer_cache)
    patched = invalidate_when_changed(zipimport.zipimporter.invalidate_caches)
    setattr(zipimport.zipimporter, "invalidate_caches", patched)  # noqa: B010 - typed as a method
    from pyspark import daemon

    daemon.manager()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
