"""PutRecords batches within Kinesis' limits (pure)."""

from __future__ import annotations

import msgspec

# A single record (data + partition key) may not exceed 1 MiB.
MAX_RECORD_BYTES = 1024 * 1024


class Record(msgspec.Struct, frozen=True, gc=False):
    """One Kinesis record. (A msgspec `Struct`: one is built per trade, in C; a NamedTuple costs
    four times more to build, a frozen dataclass more still.)"""

    data: bytes
    partition_key: str

    @property
    def size(self) -> int:
        # Kinesis counts the partition key's UTF-8 bytes against the request size too.
        return len(self.data) + len(self.partition_key.encode())


class RecordBatcher:
    """Collects records until the next one would exceed `max_records` or `max_bytes`."""

    def __init__(self, max_records: int, max_bytes: int) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._records: list[Record] = []
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def full(self) -> bool:
        return len(self._records) >= self.max_records

    def fits(self, record: Record) -> bool:
        return len(self._records) < self.max_records and self._bytes + record.size <= self.max_bytes

    def add(self, record: Record) -> None:
        if record.size > MAX_RECORD_BYTES:
            raise ValueError(f"record of {record.size} bytes exceeds Kinesis' 1 MiB limit")
        if not self.fits(record):
            raise ValueError("batch is full: check fits() first")
        self._records.append(record)
        self._bytes += record.size

    def try_add(self, record: Record) -> bool:
        """`add` if it `fits` (True), else nothing (False): the publisher's once-per-record
        call, which works the size out once instead of four times."""
        size = len(record.data) + len(record.partition_key.encode())
        if len(self._records) >= self.max_records or self._bytes + size > self.max_bytes:
            return False
        if size > MAX_RECORD_BYTES:
            raise ValueError(f"record of {size} bytes exceeds Kinesis' 1 MiB limit")
        self._records.append(record)
        self._bytes += size
        return True

    def take(self) -> list[Record]:
        records, self._records, self._bytes = self._records, [], 0
        return records
