"""The pipeline runner: source -> quality -> detector -> sinks, streaming or as a backtest.

A job script is a thin call of `run_job(<job name>)`. A streaming job runs its queries on its own
checkpoint folder, each an independent consumer of the stream:

- `quality` (every job): each micro-batch is validated; invalid rows go to the DLQ, the quality
  metrics to CloudWatch; the archiver also appends the valid trades to `raw_trades` here (that
  read of the batch observes the metrics: one read per batch).
- `detect` (jobs with a stateful detector): valid trades (the same checks as Column expressions)
  get the watermark, go through the detector, and each micro-batch of its records is routed to
  the Iceberg tables and DynamoDB by the `AlertRouter`.
- A stateless detector (the whale detector) runs inside the quality query instead: each
  micro-batch is read and validated once, its valid rows go through the detector as a static
  DataFrame, and the alerts are routed first, then the metrics and the DLQ — one consumer of the
  stream instead of two, and one read, parse and validation per batch.

Both sinks are idempotent per micro-batch (Iceberg commits tagged with writer + batch id,
DynamoDB conditional puts, DLQ files named by batch id), so a batch replayed after a crash
leaves every row and alert exactly once.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from spark_jobs.common import schemas
from spark_jobs.common.aws import client
from spark_jobs.common.cloudwatch import QualityMetricsPublisher, StreamingMetricsListener
from spark_jobs.common.detector import BATCH_TIME, BaseDetector, ModuleConfigError
from spark_jobs.common.dlq import DlqWriter
from spark_jobs.common.dynamodb import alert_item, put_alerts
from spark_jobs.common.iceberg import IcebergSink, ensure_tables, load_catalog
from spark_jobs.common.kinesis_source import read_stream
from spark_jobs.common.quality import FAILED_CHECKS, DataQualityChecker
from spark_jobs.common.registry import DEFAULT_FEATURES, load_registry
from spark_jobs.common.session import build_session
from spark_jobs.common.settings import JobSettings, SettingsError, load_job_settings
from spark_jobs.common.trades import parse_trades, read_trades_file

log = logging.getLogger(__name__)

ARCHIVER = "trade_archiver"
RAW_TRADES = "raw_trades"
ALERTS = "alerts"
TRADE_COLUMNS = [field.name for field in schemas.UNIFIED_TRADE.fields]


def valid_trades(annotated: DataFrame) -> DataFrame:
    """The trades of an annotated stream or batch (`DataQualityChecker.annotate`) that pass every
    ERROR check, as unified trade columns."""
    return annotated.where(F.size(FAILED_CHECKS) == 0).select(*TRADE_COLUMNS)


class AlertRouter:
    """Sends a micro-batch's outputs to their Iceberg tables and its alerts to DynamoDB (hot)
    and the Iceberg `alerts` table (cold)."""

    def __init__(
        self,
        settings: JobSettings,
        writer: str,
        catalog: Any,
        dynamodb: Any,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.catalog = catalog
        self.dynamodb = dynamodb
        self.now = now
        self._sinks: dict[str, IcebergSink] = {}

    def sink(self, table: str) -> IcebergSink:
        if table not in self._sinks:
            name = f"{self.settings.tables.namespace}.{table}"
            self._sinks[table] = IcebergSink(self.catalog, name, self.writer)
        return self._sinks[table]

    def route(self, outputs: dict[str, DataFrame], alerts: DataFrame, batch_id: int) -> int:
        """Write one micro-batch; returns the number of alerts in it. The alerts go to DynamoDB
        first: the hot path does not wait for the Iceberg commits (every sink is idempotent per
        batch, so their order does not matter to a replay)."""
        # Computed once: DynamoDB and Iceberg get the very same rows (detected_at included).
        alert_rows = alerts.toArrow()
        if alert_rows.num_rows:
            now = self.now()
            ttl_days = self.settings.alerts.ttl_days
            items = [alert_item(row, ttl_days, now) for row in alert_rows.to_pylist()]
            put_alerts(self.dynamodb, self.settings.alerts.dynamodb_table, items)
        for table, rows in outputs.items():
            # Computed first: most micro-batches have no rows for a table, and an empty Arrow
            # table costs the sink no catalog round trip.
            self.sink(table).append(rows.toArrow(), batch_id)
        self.sink(ALERTS).append(alert_rows, batch_id)
        return int(alert_rows.num_rows)


def route_records(
    router: AlertRouter, detector: BaseDetector, records: DataFrame, batch_id: int
) -> int:
    """One micro-batch of a detector's records to its tables and alerts; returns the alert
    count.

    The records are computed once, into the driver: a batch's records are its whales or its
    closed windows, a few rows. Most batches have none, and then nothing else runs; otherwise
    every sink's rows come from that copy (a local relation: no source read, no Python worker).
    """
    computed = records.toArrow()
    if computed.num_rows == 0:
        return 0
    local = records.sparkSession.createDataFrame(computed, schema=records.schema)
    return router.route(detector.outputs(local), detector.alerts(local), batch_id)


# Where a streaming job reads raw records (`schemas.RAW_KINESIS_RECORD` columns) from.
Source = Callable[[SparkSession, JobSettings], DataFrame]


@dataclass
class StreamingJob:
    """The two queries of a streaming job, started and awaited together. `source` is the stream
    (`read_stream`); the benchmark swaps in a file stream to price the Kinesis source."""

    spark: SparkSession
    settings: JobSettings
    job: str
    detector: BaseDetector | None
    source: Source = read_stream

    def drain(self) -> None:
        """Run until everything the stream holds now is processed (windows the watermark closes
        included), then stop. (`Trigger.AvailableNow` runs a single batch with a Python source
        in Spark 4.0, which would leave windows open.)"""
        queries = self.start()
        try:
            for query in queries:
                query.processAllAvailable()
        finally:
            for query in queries:
                query.stop()

    def start(self, available_now: bool = False) -> list[StreamingQuery]:
        settings = self.settings
        catalog = load_catalog(settings)
        ensure_tables(catalog, settings.tables.namespace)
        if settings.metrics.cloudwatch:
            self.spark.streams.addListener(
                StreamingMetricsListener(client("cloudwatch", settings), settings, self.job)
            )
        checker = DataQualityChecker(settings, self.job)
        # Annotated in the streaming plan, once: built per micro-batch, the checks' expressions
        # cost the driver hundreds of ms of Py4J and analysis. The processing time the
        # timeliness check compares with is the batch's time (a replay judges alike).
        annotated = checker.annotate(parse_trades(self.source(self.spark, settings)))
        detector = self.detector
        if detector is not None and detector.stateless:
            # The batch time from the streaming plan: a replay detects at the same time.
            stamped = annotated.withColumn(BATCH_TIME, F.current_timestamp())
            return [self._quality_query(stamped, checker, catalog, available_now, detector)]
        queries = [self._quality_query(annotated, checker, catalog, available_now)]
        if detector is not None:
            queries.append(self._detect_query(annotated, catalog, available_now))
        return queries

    def _trigger(self, writer: Any, available_now: bool) -> Any:
        if available_now:
            return writer.trigger(availableNow=True)
        return writer.trigger(
            processingTime=f"{self.settings.streaming.trigger_interval_s} seconds"
        )

    def _start(
        self,
        writer: Any,
        make_handler: Callable[[str], Callable[[DataFrame, int], None]],
        available_now: bool,
    ) -> StreamingQuery:
        """Start a foreachBatch query whose sinks know it as `<job>:<query id>`: the id lives in
        the checkpoint, so a restart keeps it (replays are recognised) and a reset checkpoint
        starts a new writer (its batch ids restart without colliding with the old ones)."""
        ready = threading.Event()
        handler: list[Callable[[DataFrame, int], None]] = []

        def on_batch(batch: DataFrame, batch_id: int) -> None:
            ready.wait()
            handler[0](batch, batch_id)

        query: StreamingQuery = self._trigger(writer.foreachBatch(on_batch), available_now).start()
        handler.append(make_handler(f"{self.job}:{query.id}"))
        ready.set()
        return query

    def _quality_query(
        self,
        annotated: DataFrame,
        checker: DataQualityChecker,
        catalog: Any,
        available_now: bool,
        detector: BaseDetector | None = None,
    ) -> StreamingQuery:
        """The quality query over the `annotated` stream; with a (stateless) `detector`, also
        the detection of each batch."""
        settings, job = self.settings, self.job
        dlq = DlqWriter(settings)
        publisher = QualityMetricsPublisher(
            client("cloudwatch", settings) if settings.metrics.cloudwatch else None,
            settings,
            job,
        )
        dynamodb = client("dynamodb", settings) if detector is not None else None

        def make_handler(writer_id: str) -> Callable[[DataFrame, int], None]:
            archive = IcebergSink(catalog, f"{settings.tables.namespace}.{RAW_TRADES}", writer_id)
            router = AlertRouter(settings, writer_id, catalog, dynamodb)

            def quality_batch(batch: DataFrame, batch_id: int) -> None:
                keep = (BATCH_TIME,) if detector is not None else ()
                valid, invalid, measure = checker.split(batch, batch_id=batch_id, keep=keep)
                try:
                    # The detection or the archive reads the whole batch first, observing its
                    # metrics on the way (they cost no second read), so the alerts go out
                    # before the metrics and the DLQ are done.
                    scanned = True
                    if detector is not None:
                        count = route_records(router, detector, detector.process(valid), batch_id)
                        log.info("detect batch %s of %s: %s alerts", batch_id, job, count)
                    elif job == ARCHIVER:
                        archive.append(valid.toArrow(), batch_id)
                    else:
                        scanned = False
                    metrics = measure(scanned=scanned)
                    # A batch without failures has no DLQ rows: no Spark job to find none (the
                    # write still clears the files of an earlier attempt, were there any).
                    dlq.write(invalid if metrics.records_failed else [], job, batch_id)
                    publisher.publish(metrics)
                finally:
                    checker.release()
                log.info("quality batch %s of %s: %s", batch_id, job, metrics)

            return quality_batch

        writer = annotated.writeStream.queryName(f"{job}-quality").option(
            "checkpointLocation", f"{settings.checkpoint(job)}/quality"
        )
        return self._start(writer, make_handler, available_now)

    def _detect_query(
        self, annotated: DataFrame, catalog: Any, available_now: bool
    ) -> StreamingQuery:
        detector = self.detector
        assert detector is not None
        settings, job = self.settings, self.job
        dynamodb = client("dynamodb", settings)
        watermarked = valid_trades(annotated).withWatermark(
            "timestamp", f"{settings.streaming.watermark_s} seconds"
        )
        records = detector.process(watermarked)

        def make_handler(writer_id: str) -> Callable[[DataFrame, int], None]:
            router = AlertRouter(settings, writer_id, catalog, dynamodb)

            def route_batch(batch: DataFrame, batch_id: int) -> None:
                count = route_records(router, detector, batch, batch_id)
                log.info("detect batch %s of %s: %s alerts", batch_id, job, count)

            return route_batch

        writer = (
            records.writeStream.queryName(f"{job}-detect")
            .outputMode(detector.output_mode)
            .option("checkpointLocation", f"{settings.checkpoint(job)}/detect")
        )
        return self._start(writer, make_handler, available_now)


def run_backtest(
    spark: SparkSession,
    settings: JobSettings,
    job: str,
    detector: BaseDetector | None,
    trades_path: str,
    out: Path,
) -> dict[str, int]:
    """The same quality and detector over a file of unified trades, as a batch; each output as
    JSON lines under `out/<output>/`. Returns rows written per output."""
    checker = DataQualityChecker(settings, job)
    trades = read_trades_file(spark, trades_path)
    valid, invalid, metrics = checker.validate(trades)
    outputs: dict[str, DataFrame] = {"dlq": invalid}
    if detector is None:
        outputs[RAW_TRADES] = valid
    else:
        records = detector.process(valid).persist()
        outputs.update(detector.outputs(records))
        outputs[ALERTS] = detector.alerts(records)
    counts = {}
    for name, frame in outputs.items():
        frame.write.mode("overwrite").option(
            "timestampFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
        ).json(str(out / name))
        counts[name] = spark.read.json(str(out / name)).count() if frame.columns else 0
    log.info("backtest done", extra={"job": job, "outputs": counts, **vars(metrics)})
    return counts


def run_job(job: str, argv: list[str] | None = None) -> int:
    """The whole life of a job script: arguments, settings, modules, session, run."""
    parser = argparse.ArgumentParser(prog=f"python -m spark_jobs.{job}")
    parser.add_argument("--backtest", metavar="TRADES", help="unified trades (JSON lines/Parquet)")
    parser.add_argument("--out", type=Path, help="backtest output folder")
    parser.add_argument("--features", default=str(DEFAULT_FEATURES), help="features.yaml")
    parser.add_argument(
        "--until-drained", action="store_true", help="process what the stream holds, then stop"
    )
    args = parser.parse_args(argv)
    if args.backtest and not args.out:
        parser.error("--backtest needs --out DIR")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_job_settings()
        detector = None
        if job != ARCHIVER:
            registry = load_registry(args.features, ssm=lambda: client("ssm", settings))
            detector = registry.by_job(job)
    except (SettingsError, ModuleConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spark = build_session(settings, job)
    if args.backtest:
        counts = run_backtest(spark, settings, job, detector, args.backtest, args.out)
        print(" ".join(f"{name}={count}" for name, count in counts.items()))
        return 0
    streaming = StreamingJob(spark, settings, job, detector)
    if args.until_drained:
        streaming.drain()
        return 0
    for query in streaming.start():
        query.awaitTermination()
    return 0
