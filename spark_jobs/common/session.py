"""The SparkSession every job and test uses: local[2] by default, RocksDB state, UTC."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from spark_jobs.common.settings import JobSettings

LAUNCHER_MASTER = "launcher"
# Where `spark_jobs` is imported from: local Python workers get it on their path.
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


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
    }
    if spark.master.startswith("local"):
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
    conf.update(spark.conf)
    builder = SparkSession.builder.appName(app_name)
    if spark.master != LAUNCHER_MASTER:  # under spark-submit (EMR) the launcher's master applies
        builder = builder.master(spark.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
