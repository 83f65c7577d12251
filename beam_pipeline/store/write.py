"""WriteShards and WriteFilesTable: Parquet files in the staging folder of a new snapshot.

Each shard is written under a temporary name and renamed, so a shard that exists is complete.
A shard holds whole files only (a file's rows arrive as one Arrow batch and stay together). Shards of a bundle that Beam retries
would be orphans: the shard names that reach the end of the pipeline are recorded in
`_staged.json`, and the commit keeps exactly those.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor

import apache_beam as beam
import pyarrow as pa

from ..layout.records import FileRecord
from ..layout.schema import FILES_SCHEMA, FILES_TABLE, GIT_BLOB, STAGED_SUMMARY, write_table
from ..runtime import counters
from ..runtime.bundles import in_global_window
from ..runtime.faults import fault_point
from ..runtime.link import WRITTEN, RunLink
from ..source import storage
from .rows import DEFAULT_ROWS_PER_SHARD, ShardBuffer


class WriteShardsFn(beam.DoFn):
    """pa.RecordBatch (one file's rows) → shard records {"path", "rows", "files", "bytes"}."""

    def __init__(self, staging_dir: str, dim: int, rows_per_shard: int,
                 progress: RunLink | None = None):
        self.staging_dir = staging_dir
        self.dim = dim
        self.rows_per_shard = rows_per_shard
        self.progress = progress or RunLink(None)
        self.rows_written = counters.counter(counters.ROWS_WRITTEN)
        self.shards_written = counters.counter(counters.SHARDS_WRITTEN)

    def setup(self):
        self.progress.setup()
        # Sorting, compressing and writing a shard runs in Arrow's C++ without the GIL: on a
        # thread it overlaps with the assembly of the next shard's files. Two threads: the
        # (at most) two shards waiting when the last file is assembled are written at once.
        self._writer = ThreadPoolExecutor(2, "write-shard")

    def start_bundle(self):
        self._buffer = ShardBuffer(self.staging_dir, self.dim, self.rows_per_shard)
        self._writing: list[Future] = []

    def process(self, batch: pa.RecordBatch):
        self.progress.checkpoint()
        self._buffer.append(batch)
        if self._buffer.full:
            self._writing.append(self._writer.submit(self._buffer.take()))
        # At most one shard waits behind the one being written: memory stays bounded.
        while self._writing and (self._writing[0].done() or len(self._writing) > 2):
            yield self._written(self._writing.pop(0).result())

    def finish_bundle(self):
        last = self._buffer.take()
        if last is not None:
            self._writing.append(self._writer.submit(last))
        writing, self._writing = self._writing, []
        for future in writing:
            yield in_global_window(self._written(future.result()))
        self.progress.flush()

    def _written(self, shard: dict) -> dict:
        self.rows_written.inc(shard["rows"])
        self.shards_written.inc()
        self.progress.send({"k": WRITTEN, "r": shard["rows"]})
        fault_point("after-shard-written")
        return shard

    def teardown(self):
        self._writer.shutdown(wait=True, cancel_futures=True)
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
            GIT_BLOB: [None] * len(records),  # the launcher knows git's blob ids (gitindex)
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


class WriteSummaryFn(beam.DoFn):
    """All FileRecords (one list) and, as a side input, all shard records → the summary."""

    def __init__(self, staging_dir: str, progress: RunLink | None = None):
        self.staging_dir = staging_dir
        self.progress = progress or RunLink(None)

    def setup(self):
        self.progress.setup()

    def process(self, records: list[FileRecord], shards: list[dict]):
        yield write_staging_summary(records, shards, self.staging_dir)


class WriteFilesTable(beam.PTransform):
    """(FileRecords, shard records) → files.parquet and the staging summary, written once."""

    def __init__(self, staging_dir: str, progress: RunLink | None = None):
        super().__init__()
        self.staging_dir = staging_dir
        self.progress = progress

    def expand(self, pcolls):
        results, shards = pcolls
        all_shards = shards | "ListShards" >> beam.combiners.ToList()
        return (
            results
            | "ListFiles" >> beam.combiners.ToList()
            | "WriteSummary" >> beam.ParDo(WriteSummaryFn(self.staging_dir, self.progress),
                                           shards=beam.pvalue.AsSingleton(all_shards))
        )
