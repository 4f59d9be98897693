"""The `spread_calculator` job. MOD-003 cross-exchange spreads: per-exchange VWAP per 30 s
window; wide spreads alerted.

    python -m spark_jobs.spread_calculator                    # streaming
    python -m spark_jobs.spread_calculator --backtest TRADES --out DIR

Also the EMR Serverless entry point (`entryPoint` = this file).
"""

import sys

from spark_jobs.common.runner import run_job


def main(argv: list[str] | None = None) -> int:
    return run_job("spread_calculator", argv)


if __name__ == "__main__":
    sys.exit(main())
