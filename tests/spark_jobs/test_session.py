"""The local session's lean SPARK_HOME: pip's pyspark without its `python/lib` archives, so the
Python processes Spark starts outside the worker daemon import pyspark with its bytecode."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest
from pyspark import SparkContext
from pyspark.sql import SparkSession
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

from spark_jobs.common import session
from spark_jobs.common.session import SPARK_HOME_PARTS, lean_spark_home, use_lean_spark_home


def fake_pyspark(root: Path) -> Path:
    home = root / "site-packages" / "pyspark"
    for part in (*SPARK_HOME_PARTS, "python/lib"):
        (home / part).mkdir(parents=True)
    (home / "python" / "lib" / "pyspark.zip").write_bytes(b"PK")
    return home


def test_the_lean_home_links_what_launches_spark_and_leaves_the_archives_out(
    tmp_path: Path,
) -> None:
    home = fake_pyspark(tmp_path)
    target = tmp_path / "var" / "spark-home"

    assert lean_spark_home(target, home) == target
    assert sorted(p.name for p in target.iterdir()) == sorted(SPARK_HOME_PARTS)
    for part in SPARK_HOME_PARTS:
        assert (target / part).is_symlink()
        assert (target / part).resolve() == home / part
    assert not (target / "python").exists()

    made = (target / "bin").lstat().st_ino
    assert lean_spark_home(target, home) == target  # already right: left as it is
    assert (target / "bin").lstat().st_ino == made


def test_a_home_linking_another_pyspark_is_rebuilt(tmp_path: Path) -> None:
    old = fake_pyspark(tmp_path / "old")
    new = fake_pyspark(tmp_path / "new")
    target = tmp_path / "spark-home"
    lean_spark_home(target, old)

    lean_spark_home(target, new)
    assert {(target / part).resolve() for part in SPARK_HOME_PARTS} == {
        new / part for part in SPARK_HOME_PARTS
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("spark-home.")] == []


def test_a_home_that_cannot_be_made_right_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    home = fake_pyspark(tmp_path)
    target = tmp_path / "spark-home"
    target.write_text("a file where the directory would go")

    with pytest.raises(NotADirectoryError):
        lean_spark_home(target, home)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site-packages", "spark-home"]


def test_another_spark_home_is_left_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPARK_HOME", "/opt/spark-4.0.1-bin-hadoop3")
    monkeypatch.setattr(SparkContext, "_gateway", None)
    target = tmp_path / "spark-home"

    assert use_lean_spark_home(target) is None
    assert os.environ["SPARK_HOME"] == "/opt/spark-4.0.1-bin-hadoop3"
    assert not target.exists()


def test_pips_spark_home_becomes_the_lean_one_before_the_jvm_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPARK_HOME", str(session.PYSPARK_HOME))  # what pip's scripts set
    monkeypatch.setattr(SparkContext, "_gateway", None)
    target = tmp_path / "spark-home"

    assert use_lean_spark_home(target) == str(target)
    assert os.environ["SPARK_HOME"] == str(target)
    assert (target / "jars").resolve() == session.PYSPARK_HOME / "jars"


def test_a_project_it_cannot_write_to_keeps_spark_home_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SPARK_HOME", raising=False)
    monkeypatch.setattr(SparkContext, "_gateway", None)
    blocker = tmp_path / "var"
    blocker.write_text("a file where the directory would go")

    with caplog.at_level(logging.WARNING, logger=session.__name__):
        assert use_lean_spark_home(blocker / "spark-home") is None
    assert "SPARK_HOME" not in os.environ
    assert "no lean SPARK_HOME" in caplog.text


# ---- the shared session ---------------------------------------------------------------------


@dataclass(frozen=True)
class Found(InputPartition):
    pyspark_file: str
    archives: tuple[str, ...]


class WherePysparkReader(DataSourceReader):
    def partitions(self) -> Sequence[InputPartition]:
        import sys

        import pyspark as planner_pyspark  # in the planner: a Python process Spark started

        archives = tuple(p for p in sys.path if p.endswith(".zip") and os.path.exists(p))
        return [Found(planner_pyspark.__file__ or "", archives)]

    def read(self, partition: InputPartition) -> Iterator[tuple[str, str]]:
        assert isinstance(partition, Found)
        yield partition.pyspark_file, ",".join(partition.archives)


class WherePysparkSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return "test_where_pyspark"

    def schema(self) -> str:
        return "pyspark_file string, archives string"

    def reader(self, schema: object) -> DataSourceReader:
        return WherePysparkReader()


def test_sparks_planner_processes_import_the_installed_pyspark(spark: SparkSession) -> None:
    """A data source's planner (a fresh Python process Spark starts, not the daemon's fork)
    imports pyspark from site-packages, and no pyspark archive is on its path."""
    spark.dataSource.register(WherePysparkSource)
    row = spark.read.format("test_where_pyspark").load().first()
    assert row is not None
    assert row["pyspark_file"] == pyspark.__file__
    assert ".zip" not in row["pyspark_file"]
    assert "pyspark.zip" not in row["archives"]
    assert os.environ["SPARK_HOME"] == str(session.LEAN_SPARK_HOME)
