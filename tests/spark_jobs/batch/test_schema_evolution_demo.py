"""schema_evolution_demo on a local warehouse: a column added, old rows NULL, new rows valued,
and every data file from before still listed unchanged; plus the pure file diff."""

from __future__ import annotations

import pytest
from pyiceberg.catalog import Catalog

from spark_jobs.batch import schema_evolution_demo
from spark_jobs.batch.evolution import DataFile, diff_files, files_table
from spark_jobs.batch.schema_evolution_demo import NEW_ROWS, OLD_ROWS, DemoError, run_demo
from spark_jobs.common.iceberg import ensure_tables, load_catalog
from spark_jobs.common.settings import JobSettings
from spark_jobs.common.tables import VOLUME_AGGREGATES

NS = "crypto_pulse"


@pytest.fixture
def catalog(settings: JobSettings) -> Catalog:
    return load_catalog(settings)


def test_diff_files() -> None:
    a, b, c = DataFile("w/a", 10, 2), DataFile("w/b", 20, 3), DataFile("w/c", 5, 1)
    diff = diff_files([a, b], [b, a, c])
    assert (diff.kept, diff.added, diff.changed, diff.removed) == ((a, b), (c,), (), ())
    assert diff.untouched
    rewritten = diff_files([a, b], [DataFile("w/a", 11, 2), c])
    assert rewritten.changed == ((a, DataFile("w/a", 11, 2)),)
    assert rewritten.removed == (b,)
    assert not rewritten.untouched
    assert files_table(rewritten, "w").splitlines() == [
        "  status   records  bytes  path",
        "  CHANGED  2        11     a",
        "  REMOVED  3        20     b",
        "  added    1        5      c",
    ]


def test_a_new_column_reads_null_in_old_rows_and_rewrites_no_file(catalog: Catalog) -> None:
    result = run_demo(catalog, NS)

    assert result.table == f"{NS}.schema_evolution_demo"
    assert result.columns_after == (*result.columns_before, "trade_imbalance")
    assert result.columns_before == VOLUME_AGGREGATES.columns
    assert result.snapshot_after_alter == result.snapshot_before  # metadata only

    assert len(result.rows_before) == len(OLD_ROWS)
    assert all("trade_imbalance" not in row for row in result.rows_before)
    by_key = {(r["window_start"], r["symbol"], r["exchange"]): r for r in result.rows_after}
    assert len(by_key) == len(OLD_ROWS) + len(NEW_ROWS)
    for old in OLD_ROWS:
        assert (
            by_key[(old["window_start"], old["symbol"], old["exchange"])]["trade_imbalance"] is None
        )
    for new, value in NEW_ROWS:
        row = by_key[(new["window_start"], new["symbol"], new["exchange"])]
        assert row["trade_imbalance"] == value
        assert row["trade_count"] == new["trade_count"]

    before, after = set(result.files_before), set(result.files_after)
    assert len(before) == 2  # (day, BTC-USDT) and (day, ETH-USDT)
    assert before <= after  # same paths, sizes and record counts
    assert len(after - before) == 1
    diff = result.diff
    assert diff.untouched
    assert (diff.changed, diff.removed) == ((), ())
    assert [f.records for f in diff.added] == [len(NEW_ROWS)]
    assert "trade_imbalance" not in result.old_file_columns
    assert "total_quote_volume" in result.old_file_columns

    report = result.report()
    assert "no data file rewritten: all 2 files from before are still listed" in report
    assert report.count("\n  kept ") == 2
    assert report.count("\n  added ") == 1
    assert "NULL" in report
    assert "-0.4" in report


def test_the_demo_is_repeatable_and_leaves_the_real_tables_alone(
    catalog: Catalog, settings_env: JobSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = ensure_tables(catalog, NS)
    real_schema = tables["volume_aggregates"].schema()

    assert schema_evolution_demo.main([]) == 0
    assert schema_evolution_demo.main(["--column", "buy_ratio"]) == 0
    out = capsys.readouterr().out
    assert "ALTER TABLE ADD COLUMN buy_ratio double" in out
    demo = catalog.load_table((NS, "schema_evolution_demo"))
    assert demo.schema().column_names[-1] == "buy_ratio"  # recreated: no trade_imbalance
    assert "trade_imbalance" not in demo.schema().column_names
    assert catalog.load_table((NS, "volume_aggregates")).schema() == real_schema

    with pytest.raises(DemoError, match=r"refusing to use crypto_pulse\.volume_aggregates"):
        run_demo(catalog, NS, "volume_aggregates")
    assert schema_evolution_demo.main(["--table", "anomalies"]) == 2
