"""The local sessions' Python worker daemon: no Spark jar on the workers' path, and a zip importer
that re-reads its archive only when the archive changed."""

from __future__ import annotations

import os
import sys
import zipfile
import zipimport
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from spark_jobs.common import worker_daemon
from spark_jobs.common.session import PROJECT_ROOT
from spark_jobs.common.worker_daemon import drop_jars, invalidate_when_changed, signature


def test_drop_jars_leaves_every_other_entry_in_order() -> None:
    path = ["/repo", "/x/pyspark.zip", "/x/jars/spark-core_2.13-4.0.1.jar", "/lib/python3.11"]
    importers: dict[str, Any] = {"/x/jars/spark-core_2.13-4.0.1.jar": object(), "/repo": None}
    assert drop_jars(path, importers) == ["/x/jars/spark-core_2.13-4.0.1.jar"]
    assert path == ["/repo", "/x/pyspark.zip", "/lib/python3.11"]
    assert list(importers) == ["/repo"]


class Importer:
    def __init__(self, archive: str) -> None:
        self.archive = archive


def test_an_archive_is_reread_once_then_only_when_it_changes(tmp_path: Path) -> None:
    archive = tmp_path / "deps.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("one.py", "A = 1\n")
    rereads: list[str] = []
    invalidate = invalidate_when_changed(lambda importer: rereads.append(importer.archive))

    for _ in range(3):
        invalidate(Importer(str(archive)))
    assert rereads == [str(archive)]

    with zipfile.ZipFile(archive, "a") as zf:  # replaced under the same name: a new size
        zf.writestr("two.py", "B = 2\n")
    invalidate(Importer(str(archive)))
    invalidate(Importer(str(archive)))
    assert rereads == [str(archive)] * 2


def test_an_archive_that_cannot_be_read_is_always_handed_to_the_original(tmp_path: Path) -> None:
    rereads: list[str] = []
    invalidate = invalidate_when_changed(lambda importer: rereads.append(importer.archive))
    gone = str(tmp_path / "gone.zip")
    invalidate(Importer(gone))
    invalidate(Importer(gone))
    assert signature(gone) is None
    assert rereads == [gone, gone]


def test_the_patched_importer_still_imports_a_changed_archive(tmp_path: Path) -> None:
    """The real zipimporter with the patched method: a module added to an archive after its
    importer read it is found once caches are invalidated (what `importlib` relies on)."""
    archive = tmp_path / "lib.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("daemon_test_first.py", "VALUE = 1\n")
    importer = zipimport.zipimporter(str(archive))
    invalidate = invalidate_when_changed(zipimport.zipimporter.invalidate_caches)
    invalidate(importer)
    assert importer.find_spec("daemon_test_second") is None
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("daemon_test_second.py", "VALUE = 2\n")
    os.utime(archive, ns=(1, 1))  # a different signature even on a coarse clock
    invalidate(importer)
    assert importer.find_spec("daemon_test_second") is not None


def test_the_session_runs_python_tasks_in_the_daemon(spark: SparkSession) -> None:
    """A Python task of the shared session sees no jar on its path and the patched importer."""

    def probe(_: Any) -> str:
        import zipimport as zi

        jars = [entry for entry in sys.path if entry.endswith(".jar")]
        patched = zi.zipimporter.invalidate_caches.__name__ == "invalidate_caches" and (
            zi.zipimporter.invalidate_caches.__qualname__.startswith("invalidate_when_changed")
        )
        return f"jars={jars} patched={patched}"

    assert spark.conf.get("spark.python.daemon.module") == worker_daemon.__name__
    row = spark.range(1).select(F.udf(probe, StringType())("id").alias("probe")).first()
    assert row is not None
    assert row["probe"] == "jars=[] patched=True"
    assert Path(PROJECT_ROOT, "spark_jobs", "common", "worker_daemon.py").is_file()
