"""The raw zone as a pyarrow file system: a local folder or `s3://bucket/prefix`.

Spark cannot write `s3a://` on a laptop (no hadoop-aws jar), and the historical loader needs no
Spark: pyarrow's S3 file system writes the Parquet files, with `AWS_ENDPOINT_URL_S3` /
`AWS_ENDPOINT_URL` as its endpoint (the local moto server, or unset on AWS).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.fs as pafs  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]


def s3_filesystem(environ: Mapping[str, str]) -> pafs.FileSystem:
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    return pafs.S3FileSystem(endpoint_override=endpoint or None, region=region or None)


class RawZone:
    """Files under one root; paths are relative to it, with `/`."""

    def __init__(self, filesystem: pafs.FileSystem, root: str, uri: str) -> None:
        self.filesystem = filesystem
        self.root = root.rstrip("/")
        self.uri = uri.rstrip("/")
        self._local = filesystem.type_name == "local"

    @classmethod
    def from_uri(cls, uri: str, environ: Mapping[str, str] | None = None) -> RawZone:
        """`s3://bucket/prefix` or a local folder (created if missing)."""
        if uri.startswith("s3://"):
            return cls(s3_filesystem(os.environ if environ is None else environ), uri[5:], uri)
        if "://" in uri and not uri.startswith("file://"):
            raise ValueError(f"raw zone {uri!r}: only local folders and s3:// are supported")
        folder = Path(uri.removeprefix("file://")).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return cls(pafs.LocalFileSystem(), folder.as_posix(), folder.as_posix())

    def _full(self, relative: str) -> str:
        return f"{self.root}/{relative.strip('/')}"

    def location(self, relative: str) -> str:
        """Where a relative path lives, as a URI or local path (for messages)."""
        return f"{self.uri}/{relative.strip('/')}"

    def list_files(self, relative_dir: str) -> list[str]:
        """Every file under `relative_dir` (recursively), relative to the root, sorted."""
        selector = pafs.FileSelector(self._full(relative_dir), recursive=True, allow_not_found=True)
        prefix = self.root + "/"
        return sorted(
            info.path.removeprefix(prefix)
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File
        )

    def write_parquet(self, relative: str, table: pa.Table) -> None:
        """Write one Parquet file, all or nothing: an S3 PUT is atomic; a local file is written
        under a hidden name (Spark and pyarrow skip `.`-files) and renamed."""
        final = self._full(relative)
        if not self._local:  # no directories on S3 (creating them leaves marker objects)
            pq.write_table(table, final, filesystem=self.filesystem)
            return
        parent = final.rsplit("/", 1)[0]
        self.filesystem.create_dir(parent, recursive=True)
        temporary = f"{parent}/.{uuid.uuid4().hex}.tmp"
        try:
            pq.write_table(table, temporary, filesystem=self.filesystem)
            self.filesystem.move(temporary, final)
        finally:
            if self.filesystem.get_file_info(temporary).type != pafs.FileType.NotFound:
                self.filesystem.delete_file(temporary)

    def read_table(self, relative: str) -> pa.Table:
        # Just the file: its path's `symbol=` would clash with the column of the same name.
        return pq.read_table(self._full(relative), filesystem=self.filesystem, partitioning=None)
