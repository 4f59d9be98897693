"""The SparkSession every job and test uses: local[2] by default, RocksDB state, UTC."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyspark
from pyspark import SparkContext
from pyspark.sql import SparkSession

from spark_jobs.common.settings import JobSettings

LAUNCHER_MASTER = "launcher"
# Where `spark_jobs` is imported from: local Python workers get it on their path.
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
# What a SPARK_HOME needs to launch pip's pyspark: its scripts and its jars (no `conf`: defaults).
SPARK_HOME_PARTS = ("bin", "jars", "sbin")
PYSPARK_HOME = Path(pyspark.__file__).resolve().parent
LEAN_SPARK_HOME = Path(PROJECT_ROOT) / "var" / "spark-home"

log = logging.getLogger(__name__)


class JavaMissingError(RuntimeError):
    """Spark needs a Java 17+ runtime."""


def check_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise JavaMissingError(
            "Spark needs Java 17 or newer: install a JDK (e.g. `apt-get install openjdk-17-jre-"
            "headless`) or set JAVA_HOME"
        )
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise JavaMissingError(f"`{java} -version` failed: {exc}") from exc


def build_session(settings: JobSettings, app_name: str) -> SparkSession:
    """A session configured from `settings.spark`; `spark.conf` entries override the defaults."""
    check_java()
    # Python workers must run the interpreter that has our dependencies (the venv's).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = settings.spark
    conf: dict[str, str] = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.ui.enabled": "false",
        "spark.sql.adaptive.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.streaming.stateStore.stateSchemaCheck": "true",
        # PySpark 4 records the Python call site of every DataFrame and Column call for its
        # error messages: four Py4J round trips and a stack walk per call, ~0.4 s of the
        # driver's time at each job start (the checks' expressions) and more per micro-batch.
        # The errors still name the failing expression and plan.
        "spark.python.sql.dataFrameDebugging.enabled": "false",
    }
    if spark.master.startswith("local"):
        use_lean_spark_home()
        # pyspark's worker daemon without Spark's jar on the import path: each Python task
        # then starts in microseconds instead of ~0.4 s (see `worker_daemon`). Local only: on
        # EMR the workers' path and Python are the cluster's.
        conf["spark.python.daemon.module"] = "spark_jobs.common.worker_daemon"
        conf["spark.executorEnv.PYTHONPATH"] = os.pathsep.join(
            entry for entry in (PROJECT_ROOT, os.environ.get("PYTHONPATH")) if entry
        )
    if spark.state_store == "rocksdb":
        conf["spark.sql.streaming.stateStore.providerClass"] = (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        )
        # Each commit writes the batch's changes, not a snapshot of the store; snapshots are
        # made in the background. Either format reads the other's checkpoints.
        conf["spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled"] = "true"
    conf.update(spark.conf)
    builder = SparkSession.builder.appName(app_name)
    if spark.master != LAUNCHER_MASTER:  # under spark-submit (EMR) the launcher's master applies
        builder = builder.master(spark.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def lean_spark_home(target: Path, pyspark_home: Path = PYSPARK_HOME) -> Path:
    """A SPARK_HOME for pip's pyspark at `target`: links to its `SPARK_HOME_PARTS`, and no
    `python/lib`. Spark puts `$SPARK_HOME/python/lib/pyspark.zip` first on the path of each
    Python process it starts outside the worker daemon (a data source's planner, a streaming
    source's runner, the transformWithState driver), so each one compiled pyspark's sources
    from that zip, which holds no bytecode: ~0.7 s of CPU for every such process, at every
    query start. Without the zip they import the same pyspark (the zip is a copy of the
    installed package) from site-packages, with its bytecode cache.

    Idempotent, and a right home is never removed (a JVM may be starting from it): another
    process may make it at the same time. Raises OSError when `target` cannot be made right."""
    if _links_to(target, pyspark_home):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f"{target.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for part in SPARK_HOME_PARTS:
            (staging / part).symlink_to(pyspark_home / part, target_is_directory=True)
        try:
            staging.rename(target)  # refused when `target` is there, not empty
        except OSError:
            if not _links_to(target, pyspark_home):  # not another process's: a stale home
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not _links_to(target, pyspark_home):
        raise OSError(f"{target} does not link to {pyspark_home}")
    return target


def _links_to(home: Path, pyspark_home: Path) -> bool:
    return all((home / part).resolve() == pyspark_home / part for part in SPARK_HOME_PARTS)


def use_lean_spark_home(target: Path = LEAN_SPARK_HOME) -> str | None:
    """Launch the local JVM from `lean_spark_home` when Spark is pip's pyspark (SPARK_HOME unset
    or pointing at it) and no JVM runs yet; returns the SPARK_HOME in effect, or None when it
    is left alone (another Spark, a running JVM, an unwritable project)."""
    current = os.environ.get("SPARK_HOME")
    if current is not None and Path(current).resolve() not in (PYSPARK_HOME, target.resolve()):
        return None
    if SparkContext._gateway is not None:  # the JVM's SPARK_HOME is settled
        return current
    try:
        home = str(lean_spark_home(target))
    except OSError as exc:
        log.warning(
            "no lean SPARK_HOME at %s (%s): Spark's Python processes start slower", target, exc
        )
        return current
    os.environ["SPARK_HOME"] = home
    return home
