"""The `whale_detector` job. MOD-002 whale trades: quote volume over the threshold,
enriched; alerts to DynamoDB and Iceberg.

    python -m spark_jobs.whale_detector                    # streaming
    python -m spark_jobs.whale_detector --backtest TRADES --out DIR

Also the EMR Serverless entry point (`entryPoint` = this file).
"""

import sys

from spark_jobs.common.runner import run_job


def main(argv: list[str] | None = None) -> int:
    return run_job("whale_detector", argv)


if __name__ == "__main__":
    sys.exit(main())
