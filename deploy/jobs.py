"""The jobs EMR Serverless runs: name, mode and entry script (pure facts, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["STREAMING", "BATCH"]

# Streaming jobs run until stopped (EMR restarts them under the retry policy); batch jobs end.
STREAMING_JOBS = ("volume_anomaly", "whale_detector", "spread_calculator", "trade_archiver")
BATCH_JOBS = ("historical_loader", "reprocess_anomalies", "schema_evolution_demo")


# Jobs with a `--features FILE` option (the detector registry); on EMR they get the shipped file.
FEATURES_JOBS = frozenset({*STREAMING_JOBS, "reprocess_anomalies"})


@dataclass(frozen=True)
class Job:
    name: str
    mode: Mode

    @property
    def reads_features(self) -> bool:
        return self.name in FEATURES_JOBS

    @property
    def source(self) -> str:
        """The entry script, relative to the repository: `spark_jobs/<job>.py` or
        `spark_jobs/batch/<job>.py`."""
        if self.mode == "STREAMING":
            return f"spark_jobs/{self.name}.py"
        return f"spark_jobs/batch/{self.name}.py"

    @property
    def artifact(self) -> str:
        """Where the entry script sits in the package (and, under the build's prefix, in S3)."""
        return f"jobs/{self.name}.py"


JOBS: dict[str, Job] = {
    **{name: Job(name, "STREAMING") for name in STREAMING_JOBS},
    **{name: Job(name, "BATCH") for name in BATCH_JOBS},
}


def job_named(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise KeyError(f"unknown job {name!r}; known: {', '.join(JOBS)}") from None
