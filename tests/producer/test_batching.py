import pytest

from producer.batching import MAX_RECORD_BYTES, Record, RecordBatcher


def test_batch_closes_at_the_record_limit() -> None:
    batcher = RecordBatcher(max_records=3, max_bytes=10_000)
    for i in range(3):
        batcher.add(Record(b"x" * 10, f"k{i}"))
    assert batcher.full
    assert not batcher.fits(Record(b"y", "k"))
    taken = batcher.take()
    assert [r.partition_key for r in taken] == ["k0", "k1", "k2"]
    assert len(batcher) == 0


def test_batch_size_counts_data_and_partition_key_bytes() -> None:
    batcher = RecordBatcher(max_records=500, max_bytes=100)
    batcher.add(Record(b"a" * 90, "BTC-USDT"))  # 98 bytes
    assert batcher.fits(Record(b"b", "B"))  # 100: exactly at the limit
    assert not batcher.fits(Record(b"bb", "B"))  # 101
    with pytest.raises(ValueError, match="full"):
        batcher.add(Record(b"bb", "B"))


def test_a_record_over_one_mebibyte_is_refused() -> None:
    batcher = RecordBatcher(max_records=500, max_bytes=5 * 1024 * 1024)
    with pytest.raises(ValueError, match="1 MiB"):
        batcher.add(Record(b"x" * MAX_RECORD_BYTES, "k"))


def test_try_add_is_fits_then_add() -> None:
    batcher = RecordBatcher(max_records=2, max_bytes=100)
    assert batcher.try_add(Record(b"a" * 90, "BTC-USDT"))  # 98 bytes
    assert not batcher.try_add(Record(b"bb", "B"))  # 101: left out, batch unchanged
    assert batcher.try_add(Record(b"b", "B"))  # 100: exactly at the limit
    assert not batcher.try_add(Record(b"", "C"))  # record limit
    assert [r.partition_key for r in batcher.take()] == ["BTC-USDT", "B"]
    big = RecordBatcher(max_records=500, max_bytes=5 * 1024 * 1024)
    with pytest.raises(ValueError, match="1 MiB"):
        big.try_add(Record(b"x" * MAX_RECORD_BYTES, "k"))
