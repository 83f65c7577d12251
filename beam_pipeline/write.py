"""WriteShards and WriteFilesTable: Parquet files in the staging folder of a new snapshot.

Each shard is written under a temporary name and renamed, so a shard that exists is complete.
A shard holds whole files only (one file = one Arrow batch). Shards of a bundle that Beam retries
would be orphans: the shard names that reach the end of the pipeline are recorded in
`_staged.json`, and the commit keeps exactly those.
"""

from __future__ import annotations

import json
import uuid

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from . import stats, storage
from .faults import fault_point
from .progress import WRITTEN, RunLink
from .records import FileRecord
from .schema import FILES_SCHEMA, FILES_TABLE, SHARD_PREFIX, row_schema

STAGED_SUMMARY = "_staged.json"
DEFAULT_ROWS_PER_SHARD = 65_536
# Rows are sorted by path and cut into row groups of this size, so the path statistics of a row
# group let a reader that wants a few files (re-indexing's vector reuse) skip the rest.
ROW_GROUP_SIZE = 8_192


def write_table(table: pa.Table, path: str) -> int:
    """Write atomically (on any FileSystems scheme); returns the size in bytes.

    Only low-cardinality string columns are dictionary-encoded: on the vector column a
    dictionary only grows the file and slows the write (BEAM_NOTES.md).
    """
    dictionary_columns = [name for name in ("path", "language", "file_hash", "status")
                          if name in table.column_names]
    return storage.write_parquet(table, str(path), compression="zstd",
                                 use_dictionary=dictionary_columns, row_group_size=ROW_GROUP_SIZE)


class ShardBuffer:
    """Whole files' row batches → Parquet shards of about `rows_per_shard` rows, sorted by path.

    Pure (no Beam): the pipeline's WriteShardsFn and the benchmark's baselines write alike.

    Example::

        buffer = ShardBuffer("/staging", dim=384)
        shard = buffer.add(batch)      # a shard record when one was written, else None
        last = buffer.flush()
    """

    def __init__(self, directory: str, dim: int, rows_per_shard: int = DEFAULT_ROWS_PER_SHARD):
        self.directory = directory
        self.dim = dim
        self.rows_per_shard = rows_per_shard
        self._batches: list[pa.RecordBatch] = []
        self._rows = 0

    def add(self, batch: pa.RecordBatch) -> dict | None:
        self._batches.append(batch)
        self._rows += batch.num_rows
        return self.flush() if self._rows >= self.rows_per_shard else None

    def flush(self) -> dict | None:
        """Write what is buffered as one shard; its record {"path", "rows", "files", "bytes"}."""
        if not self._batches:
            return None
        # Each batch is one file's rows in chunk order: ordering the batches sorts the shard
        # without copying any row.
        self._batches.sort(key=lambda batch: batch.column(1)[0].as_py())
        table = pa.Table.from_batches(self._batches, schema=row_schema(self.dim))
        name = f"{SHARD_PREFIX}{uuid.uuid4().hex}.parquet"
        size = write_table(table, storage.join(self.directory, name))
        shard = {"path": name, "rows": table.num_rows, "files": len(self._batches), "bytes": size}
        self._batches, self._rows = [], 0
        return shard


class WriteShardsFn(beam.DoFn):
    """pa.RecordBatch (one file's rows) → shard records {"path", "rows", "files", "bytes"}."""

    def __init__(self, staging_dir: str, dim: int, rows_per_shard: int,
                 progress: RunLink | None = None):
        self.staging_dir = staging_dir
        self.dim = dim
        self.rows_per_shard = rows_per_shard
        self.progress = progress or RunLink(None)
        self.rows_written = stats.counter(stats.ROWS_WRITTEN)
        self.shards_written = stats.counter(stats.SHARDS_WRITTEN)

    def start_bundle(self):
        self._buffer = ShardBuffer(self.staging_dir, self.dim, self.rows_per_shard)

    def process(self, batch: pa.RecordBatch):
        self.progress.checkpoint()
        shard = self._buffer.add(batch)
        if shard is not None:
            yield self._written(shard)

    def finish_bundle(self):
        shard = self._buffer.flush()
        if shard is not None:
            yield WindowedValue(self._written(shard), MIN_TIMESTAMP, [GlobalWindow()])

    def _written(self, shard: dict) -> dict:
        self.rows_written.inc(shard["rows"])
        self.shards_written.inc()
        self.progress.send({"k": WRITTEN, "r": shard["rows"]})
        fault_point("after-shard-written")
        return shard

    def teardown(self):
        self.progress.close()


def files_table(records: list[FileRecord]) -> pa.Table:
    records = sorted(records, key=lambda r: r.path)
    return pa.Table.from_pydict(
        {
            "path": [r.path for r in records],
            "size": [r.size for r in records],
            "mtime_ns": [r.mtime_ns for r in records],
            "file_hash": [r.file_hash for r in records],
            "total_chunks": [r.total_chunks for r in records],
            "status": [r.status for r in records],
            "error": [r.error for r in records],
        },
        schema=FILES_SCHEMA,
    )


def write_staging_summary(records: list[FileRecord], shards: list[dict], staging_dir: str) -> dict:
    """Last step of the pipeline: files.parquet plus the list of shards the run produced."""
    write_table(files_table(records), storage.join(staging_dir, FILES_TABLE))
    summary = {"shards": sorted(shards, key=lambda s: s["path"]), "files": len(records)}
    storage.write_bytes(storage.join(staging_dir, STAGED_SUMMARY), json.dumps(summary).encode())
    return summary


class WriteShards(beam.PTransform):
    """Rows → Parquet shards in `staging_dir`; returns the shard records."""

    def __init__(self, staging_dir: str, dim: int, rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
                 progress: RunLink | None = None):
        super().__init__()
        self.staging_dir = staging_dir
        self.dim = dim
        self.rows_per_shard = rows_per_shard
        self.progress = progress

    def expand(self, rows):
        return rows | "WriteShard" >> beam.ParDo(
            WriteShardsFn(self.staging_dir, self.dim, self.rows_per_shard, self.progress)
        )


class WriteFilesTable(beam.PTransform):
    """(FileRecords, shard records) → files.parquet and the staging summary, written once."""

    def __init__(self, staging_dir: str):
        super().__init__()
        self.staging_dir = staging_dir

    def expand(self, pcolls):
        results, shards = pcolls
        all_shards = shards | "ListShards" >> beam.combiners.ToList()
        return (
            results
            | "ListFiles" >> beam.combiners.ToList()
            | "WriteSummary" >> beam.Map(
                write_staging_summary,
                shards=beam.pvalue.AsSingleton(all_shards),
                staging_dir=self.staging_dir,
            )
        )
