"""The `volume_anomaly` job. MOD-001 volume spikes: 60 s windows per (exchange, symbol)
scored against the preceding hour; anomalies to DynamoDB and Iceberg.

    python -m spark_jobs.volume_anomaly                    # streaming
    python -m spark_jobs.volume_anomaly --backtest TRADES --out DIR

Also the EMR Serverless entry point (`entryPoint` = this file).
"""

import sys

from spark_jobs.common.runner import run_job


def main(argv: list[str] | None = None) -> int:
    return run_job("volume_anomaly", argv)


if __name__ == "__main__":
    sys.exit(main())
