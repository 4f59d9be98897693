"""The Spark jobs' figures: each detector job draining trades already on the local stream, the
same job reading the same trades from files, and the emulator's own read rate.

Every run is the job as it ships (`StreamingJob`: for the volume and spread jobs the quality
query and the detect query, each reading the source; for the whale job one query doing both;
with their sinks: DLQ, Iceberg, DynamoDB) on `local[2]`, from a fresh checkpoint, timed from
`start()` to the end of `processAllAvailable()` on every query. The
session is started once, before any timing; the Iceberg tables and the alerts table of each run
are created before its clock starts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench import frames as market
from bench.measure import Figure, Section, ratios
from devstack.aws import LocalAws
from devstack.provision import ensure_alerts_table, ensure_iceberg, ensure_stream
from producer.batching import Record
from spark_jobs.common.kinesis_source import read_stream
from spark_jobs.common.registry import load_registry
from spark_jobs.common.runner import Source, StreamingJob
from spark_jobs.common.session import build_session
from spark_jobs.common.settings import JobSettings
from spark_jobs.common.trades import parse_trades

JOBS = ("whale_detector", "volume_anomaly", "spread_calculator")
FIGURE_KEYS = {
    "whale_detector": "whale_job_events_per_s",
    "volume_anomaly": "volume_job_events_per_s",
    "spread_calculator": "spread_job_events_per_s",
}
JOB_TRADES = 50_000  # every job runs 6 times on them: more makes `make bench` too long
# A second, longer stream each job drains once: with the runs on JOB_TRADES, the two points of a
# line whose slope is the job's rate once running (the per-start costs cancel out).
BACKLOG_TRADES = 250_000
BACKLOG_STREAM = "bench-backlog"
SHARDS = 2  # as `make demo` provisions
RECORDS_PER_BATCH = 100_000  # config/pipeline.yaml's stream.max_records_per_batch
FILE_LINES = 25_000  # the file source's batches: RECORDS_PER_BATCH / FILE_LINES files each
STREAM = "bench-trades"
DURATION_KEYS = (
    "latestOffset",
    "getBatch",
    "queryPlanning",
    "addBatch",
    "walCommit",
    "commitOffsets",
    "triggerExecution",
)


@dataclass
class JobRun:
    seconds: float
    input_rows: dict[str, int]  # per query
    durations_ms: dict[str, dict[str, int]]  # per query: durationMs summed over its batches
    batches: dict[str, int]

    def breakdown(self) -> dict[str, Any]:
        """The run as results.json keeps it (RESULTS.md's "Where the jobs' time goes")."""
        return {
            "seconds": round(self.seconds, 2),
            "batches": self.batches,
            "input_rows": self.input_rows,
            "durations_ms": self.durations_ms,
        }


class JobBench:
    """The stack of the job benchmarks: one moto server, one stream loaded once, one session."""

    def __init__(self, workdir: Path, records: list[Record]) -> None:
        self.workdir = workdir
        self.records = records
        self.aws = LocalAws(log_path=workdir / "moto.log")
        self.spark: SparkSession | None = None
        self.files = workdir / "trades"

    def __enter__(self) -> JobBench:
        shutil.rmtree(self.workdir, ignore_errors=True)  # earlier runs' checkpoints and tables
        self.workdir.mkdir(parents=True)
        self.aws.start()
        # Python workers inherit the environment of the moment the session starts.
        os.environ.update(self.aws.env())
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.spark is not None:
            self.spark.stop()
            self.spark = None
        self.aws.stop()

    @property
    def region(self) -> str:
        return self.aws.env()["AWS_REGION"]

    def load_stream(self, records: list[Record] | None = None, stream: str = STREAM) -> float:
        """Put every record (default: the benchmark's) on `stream` (PutRecords, 500 a call);
        returns records/s."""
        records = self.records if records is None else records
        kinesis = boto3.client("kinesis", region_name=self.region)
        ensure_stream(kinesis, stream, shards=SHARDS)
        start = time.perf_counter()
        for index in range(0, len(records), 500):
            chunk = records[index : index + 500]
            entries: Any = [{"Data": r.data, "PartitionKey": r.partition_key} for r in chunk]
            response = kinesis.put_records(StreamName=stream, Records=entries)
            if response["FailedRecordCount"]:
                raise RuntimeError(f"moto refused {response['FailedRecordCount']} records")
        return len(records) / (time.perf_counter() - start)

    def bytes_per_shard(self, stream: str = STREAM) -> list[int]:
        """The records' data bytes on each shard of `stream`, busiest first, placed as Kinesis
        places them (the MD5 of the partition key within each shard's hash key range)."""
        kinesis = boto3.client("kinesis", region_name=self.region)
        shards = kinesis.list_shards(StreamName=stream)["Shards"]
        ranges = [
            (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
            for s in shards
        ]
        sizes = [0] * len(ranges)
        for record in self.records:
            key = int.from_bytes(hashlib.md5(record.partition_key.encode()).digest(), "big")
            shard = next(i for i, (low, high) in enumerate(ranges) if low <= key <= high)
            sizes[shard] += len(record.data)
        return sorted(sizes, reverse=True)

    def write_files(self) -> int:
        """The same records as JSON lines, `FILE_LINES` a file; returns the number of files."""
        self.files.mkdir(parents=True, exist_ok=True)
        count = 0
        for index in range(0, len(self.records), FILE_LINES):
            chunk = self.records[index : index + FILE_LINES]
            path = self.files / f"part-{count:05d}.jsonl"
            path.write_bytes(b"".join(r.data + b"\n" for r in chunk))
            count += 1
        return count

    def read_stream_once(self) -> float:
        """The emulator floor: every record read back with a bare GetRecords loop (10 000 a
        call, shard after shard); returns records/s."""
        kinesis = boto3.client("kinesis", region_name=self.region)
        start = time.perf_counter()
        total = 0
        for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                total += len(page["Records"])
                if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                    break
                iterator = page.get("NextShardIterator")
        seconds = time.perf_counter() - start
        if total != len(self.records):
            raise RuntimeError(f"read {total} records back, put {len(self.records)}")
        return total / seconds

    def session(self, settings: JobSettings) -> SparkSession:
        if self.spark is None:
            self.spark = build_session(settings, "crypto-pulse-bench")
            self.spark.sparkContext.setLogLevel("ERROR")
        return self.spark

    def settings(self, tag: str, stream_name: str = STREAM) -> JobSettings:
        """A run's settings: its own checkpoints, tables' warehouse and alerts table."""
        stream = {
            "name": stream_name,
            "starting_position": "TRIM_HORIZON",
            "max_records_per_batch": RECORDS_PER_BATCH,
        }
        return market.job_settings(
            self.workdir / "runs" / tag, stream, f"bench-alerts-{tag}", catalog="crypto_pulse_bench"
        )

    def source(self, source_name: str) -> Source:
        if source_name == "files":
            return file_source(str(self.files), RECORDS_PER_BATCH // FILE_LINES)
        return read_stream

    def floor_run(self, source_name: str) -> float:
        """The Spark floor: one streaming query over the same trades from the same source, with
        the shipped configuration, doing nothing but the jobs' parse of each record
        (`parse_trades`) into Spark's `noop` sink: no checks, no detector, no state, no writes.
        Seconds from `start()` to the end of `processAllAvailable()`."""
        tag = f"floor-{source_name}-{uuid.uuid4().hex[:6]}"
        settings = self.settings(tag)
        spark = self.session(settings)
        parsed = parse_trades(self.source(source_name)(spark, settings))
        checkpoint = str(self.workdir / "runs" / tag / "checkpoint")
        start = time.perf_counter()
        query = parsed.writeStream.format("noop").option("checkpointLocation", checkpoint).start()
        try:
            query.processAllAvailable()
            seconds = time.perf_counter() - start
            rows = sum(int(p.numInputRows) for p in query.recentProgress)
        finally:
            query.stop()
        if rows != len(self.records):
            raise RuntimeError(f"{tag}: read {rows} of {len(self.records)}")
        return seconds

    def run(
        self, job: str, source_name: str, stream_name: str = STREAM, expected: int | None = None
    ) -> JobRun:
        """One timed run of `job` over every record, from `source_name` (kinesis | files); or
        over the `expected` records of another stream."""
        tag = f"{job}-{source_name}-{uuid.uuid4().hex[:6]}"
        expected = len(self.records) if expected is None else expected
        settings = self.settings(tag, stream_name)
        spark = self.session(settings)
        ensure_alerts_table(
            boto3.client("dynamodb", region_name=self.region), f"bench-alerts-{tag}"
        )
        ensure_iceberg(settings)
        source = self.source(source_name)
        streaming = StreamingJob(spark, settings, job, load_registry().by_job(job), source)
        start = time.perf_counter()
        queries = streaming.start()
        try:
            for query in queries:
                query.processAllAvailable()
            seconds = time.perf_counter() - start
            progress = {str(q.name): list(q.recentProgress) for q in queries}
        finally:
            for query in queries:
                query.stop()
        quality = next(name for name in progress if name.endswith("-quality"))
        rows = {name: sum(int(p.numInputRows) for p in items) for name, items in progress.items()}
        if rows[quality] != expected:
            raise RuntimeError(f"{tag}: quality query read {rows[quality]} of {expected}")
        durations = {
            name: {key: sum(int(p.durationMs.get(key, 0)) for p in items) for key in DURATION_KEYS}
            for name, items in progress.items()
        }
        batches = {
            name: sum(1 for p in items if p.numInputRows) for name, items in progress.items()
        }
        return JobRun(seconds, rows, durations, batches)


def add_floor(
    section: Section, floor_s: dict[str, list[float]], kinesis_s: dict[str, list[float]], count: int
) -> None:
    """The Spark floor's figures (`JobBench.floor_run`) and each job's time over it."""
    floor_method = (
        "a streaming query doing nothing but the jobs' parse of each record (`parse_trades`: "
        "JSON, times) into Spark's `noop` sink, on local[2] with the shipped configuration "
        "(no checks, detector, state or writes): the least any job costs over these trades from "
        "this source. Events / seconds from `start()` to `processAllAvailable()`."
    )
    section.add(
        Figure(
            "spark_floor_events_per_s",
            [count / s for s in floor_s["kinesis"]],
            "events/s",
            f"The same {count:,} trades from the stream (python source, as the jobs read it): "
            + floor_method,
        )
    )
    section.add(
        Figure(
            "spark_floor_file_source_events_per_s",
            [count / s for s in floor_s["files"]],
            "events/s",
            "The same trades from the files of the file-source runs: " + floor_method,
        )
    )
    for job, times in kinesis_s.items():
        section.add(
            Figure(
                f"{FIGURE_KEYS[job].removesuffix('_events_per_s')}_vs_spark_floor_ratio",
                ratios(times, floor_s["kinesis"]),
                "x",
                f"`{job}`'s time from the stream over the Spark floor's from the stream (the "
                "repetitions paired in order).",
            )
        )


def add_running_rates(
    section: Section,
    kinesis_s: dict[str, list[float]],
    backlog_s: dict[str, float],
    count: int,
    backlog: int,
) -> None:
    """Each job's rate once running, and what it pays per start: the line through (`count`,
    the median of its runs) and (`backlog`, its run over the backlog stream)."""
    for job, long_s in backlog_s.items():
        short_s = statistics.median(kinesis_s[job])
        key = FIGURE_KEYS[job].removesuffix("_events_per_s")
        if long_s <= short_s:
            note = f"the backlog run ({long_s:.1f} s) was no longer than the short runs"
            section.add(Figure(f"{key}_running_events_per_s", [], "events/s", "", note=note))
            continue
        rate = (backlog - count) / (long_s - short_s)
        section.add(
            Figure(
                f"{key}_running_events_per_s",
                [rate],
                "events/s",
                f"`{job}` from the stream once running: the {backlog - count:,} events more of "
                f"a {backlog:,}-trade backlog (another stream, {backlog // RECORDS_PER_BATCH + 1} "
                f"batches) over the time they added to a {count:,}-trade run (the median "
                "above). The fixed costs of a run (query start, first read-ahead, planning) "
                "cancel out.",
            )
        )
        section.add(
            Figure(
                f"{key}_fixed_cost_s",
                [max(0.0, short_s - count / rate)],
                "s",
                f"`{job}`: the time a run takes beyond its events at the running rate (the "
                "line's intercept): query start, the source's process, planning.",
            )
        )


def file_source(path: str, files_per_trigger: int) -> Source:
    """A file stream in the Kinesis source's shape: each line of the files is one record's data
    (the columns the jobs do not read are null)."""

    def read(spark: SparkSession, settings: JobSettings) -> DataFrame:
        lines = (
            spark.readStream.format("text")
            .option("maxFilesPerTrigger", files_per_trigger)
            .load(path)
        )
        return lines.select(
            F.col("value").cast("binary").alias("data"),
            F.lit(settings.stream.name).alias("streamName"),
            F.lit(None).cast("string").alias("partitionKey"),
            F.lit(None).cast("string").alias("sequenceNumber"),
            F.lit(None).cast("timestamp").alias("approximateArrivalTimestamp"),
        )

    return read


def run_jobs(
    section: Section,
    records: list[Record],
    workdir: Path,
    repeat: int,
    jobs: tuple[str, ...] = JOBS,
    log: Callable[[str], None] = print,
    backlog: list[Record] | None = None,
) -> None:
    """Every job figure, the source ratio and the emulator floor, into `section`; with a
    `backlog` (more trades than `records`), each job's rate once running."""
    count = len(records)
    with JobBench(workdir, records) as stack:
        put_rate = stack.load_stream()
        files = stack.write_files()
        shard_bytes = stack.bytes_per_shard()
        log(f"jobs: {count:,} trades on the stream ({put_rate:,.0f} records/s put), {files} files")
        if backlog is not None:
            stack.load_stream(backlog, BACKLOG_STREAM)
            log(f"jobs: {len(backlog):,} trades on the backlog stream")
        reads = [stack.read_stream_once() for _ in range(repeat)]
        # Untimed: the session's first queries pay for class loading and JIT compilation, on
        # each source's own code path (the python source's first run took twice its next ones)
        # and on each job's own operators: a job's first run from each source took 1.3-1.7x
        # its next ones (it was always a stream run, the repetitions' first).
        for job, source_name in ((j, s) for j in jobs for s in ("files", "kinesis")):
            warm = stack.run(job, source_name)
            log(f"jobs: warm-up ({job} from {source_name}) {warm.seconds:.1f} s")
        floor_s: dict[str, list[float]] = {"kinesis": [], "files": []}
        for index in range(repeat + 1):  # the first of each source untimed, as the jobs'
            for source_name, floor_runs in floor_s.items():
                seconds = stack.floor_run(source_name)
                log(f"jobs: the Spark floor from {source_name} run {index}: {seconds:.1f} s")
                if index:
                    floor_runs.append(seconds)
        kinesis_s: dict[str, list[float]] = {job: [] for job in jobs}
        files_s: dict[str, list[float]] = {job: [] for job in jobs}
        breakdown: dict[str, Any] = {}
        for job in jobs:
            for index in range(repeat):
                for source_name, times in (("kinesis", kinesis_s), ("files", files_s)):
                    result = stack.run(job, source_name)
                    times[job].append(result.seconds)
                    log(f"jobs: {job} from {source_name} run {index + 1}: {result.seconds:.1f} s")
                    if index == repeat - 1:
                        breakdown[f"{job}/{source_name}"] = result.breakdown()
        backlog_s: dict[str, float] = {}
        if backlog is not None:
            for job in jobs:
                result = stack.run(job, "kinesis", BACKLOG_STREAM, len(backlog))
                backlog_s[job] = result.seconds
                log(f"jobs: {job} over the backlog ({len(backlog):,}): {result.seconds:.1f} s")
                breakdown[f"{job}/kinesis backlog"] = result.breakdown()
    batch_note = (
        f"{count:,} unified trades (the producer's records of the benchmark market) already on a "
        f"{SHARDS}-shard stream in the local Kinesis (moto server), read from TRIM_HORIZON with "
        f"the shipped configuration (python source, {RECORDS_PER_BATCH:,} records a batch, "
        "shuffle partitions 2, RocksDB state); trigger as fast as it goes; each job run once "
        "from each source, untimed, before its timed runs."
    )
    for job in jobs:
        section.add(
            Figure(
                FIGURE_KEYS[job],
                [count / s for s in kinesis_s[job]],
                "events/s",
                f"`{job}` on local[2]: {batch_note} Events / seconds from `start()` to every "
                "query's `processAllAvailable()` (quality + detect, with their sinks).",
            )
        )
    for job in jobs:
        section.add(
            Figure(
                f"{FIGURE_KEYS[job].removesuffix('_events_per_s')}_file_source_events_per_s",
                [count / s for s in files_s[job]],
                "events/s",
                f"`{job}`, the same trades as {files} JSON-lines files of {FILE_LINES:,} "
                f"(a text file stream, {RECORDS_PER_BATCH // FILE_LINES} files a batch: the same "
                "batches), everything else the same.",
            )
        )
    add_floor(section, floor_s, kinesis_s, count)
    if backlog is not None:
        add_running_rates(section, kinesis_s, backlog_s, count, len(backlog))
    all_kinesis = [sum(runs) for runs in zip(*kinesis_s.values(), strict=True)]
    all_files = [sum(runs) for runs in zip(*files_s.values(), strict=True)]
    section.add(
        Figure(
            "kinesis_source_vs_file_source_ratio",
            ratios(all_kinesis, all_files),
            "x",
            "The three jobs' time reading the stream over their time reading the same trades "
            "from files (sum over the jobs, per repetition).",
        )
    )
    for job in jobs:
        section.add(
            Figure(
                f"{FIGURE_KEYS[job].removesuffix('_events_per_s')}_kinesis_vs_file_ratio",
                ratios(kinesis_s[job], files_s[job]),
                "x",
                f"`{job}` alone: stream time over file time.",
            )
        )
    section.add(
        Figure(
            "moto_get_records_per_s",
            reads,
            "records/s",
            "The emulator floor: a bare boto3 GetRecords loop (10 000 a call) reading every "
            "record once. The python source fetches each record once per query (the driver's "
            "read-ahead in `latestOffset`; the rows travel with the batch's partitions): twice "
            "for the volume and spread jobs (two queries), once for the whale job.",
        )
    )
    section.details["job_breakdown"] = breakdown
    section.details["moto_put_records_per_s"] = round(put_rate)
    section.details["stream_bytes_per_shard"] = shard_bytes
    section.details["job_trades"] = count
