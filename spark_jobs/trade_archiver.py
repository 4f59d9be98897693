"""The `trade_archiver` job. Every valid trade into the `raw_trades` Iceberg table (bronze);
invalid ones to the DLQ.

    python -m spark_jobs.trade_archiver                    # streaming
    python -m spark_jobs.trade_archiver --backtest TRADES --out DIR

Also the EMR Serverless entry point (`entryPoint` = this file).
"""

import sys

from spark_jobs.common.runner import run_job


def main(argv: list[str] | None = None) -> int:
    return run_job("trade_archiver", argv)


if __name__ == "__main__":
    sys.exit(main())
