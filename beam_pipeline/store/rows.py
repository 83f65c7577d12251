"""A file's rows as Arrow, and Parquet shards of whole files: pure, without Beam.

AssembleFile builds each file's rows with `build_rows` and WriteShardsFn writes them with a
`ShardBuffer`; the benchmark's baselines (benchmarks/shapes.py) build and write alike without
importing Beam.

Example::

    buffer = ShardBuffer("/staging", dim=384)
    shard = buffer.add(build_rows(record, chunks, vectors, 384))  # a shard record, or None
    last = buffer.flush()
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..layout.records import FileRecord
from ..layout.schema import SHARD_PREFIX, chunk_id, row_schema, write_table
from ..source import storage
from ..source.language import detect_language


def build_rows(record: FileRecord, chunks, vectors: np.ndarray, dim: int) -> pa.RecordBatch:
    """One Arrow batch with all rows of one file, in the schema of schema.row_schema(dim)."""
    n = len(chunks)
    path, digest = record.path, record.file_hash
    columns = [
        pa.array([chunk_id(path, digest, c.index) for c in chunks], pa.string()),
        pa.array([path] * n, pa.string()),
        pa.array([c.index for c in chunks], pa.int32()),
        pa.array([n] * n, pa.int32()),
        pa.array([c.line_start for c in chunks], pa.int32()),
        pa.array([c.line_end for c in chunks], pa.int32()),
        pa.array([c.char_start for c in chunks], pa.int64()),
        pa.array([c.char_end for c in chunks], pa.int64()),
        pa.array([detect_language(path)] * n, pa.string()),
        pa.array([digest] * n, pa.string()),
        pa.array([record.size] * n, pa.int64()),
        pa.array([c.text for c in chunks], pa.string()),
        pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=row_schema(dim))



# Small enough that shards are written (on a thread) while later files are assembled, leaving
# little to write after the last one (on the standard library 16,384 rather than 65,536 rows a
# shard took the run from 6.0–6.6 s to 5.6–5.8 s), and that the three shards a writer may hold
# (one filling, two writing) stay small: 8,192 rather than 16,384 took the standard library's
# peak RSS from 531–534 to 421–439 MB and 100,000 small files' from 591 to 525 MB, in the same
# time (8.0–9.5 s against 8.6–9.2 s; python -m benchmarks.memory --shapes x1, medians of 3).
DEFAULT_ROWS_PER_SHARD = 8_192


# A file's batch of a few rows costs ~16 KB of Arrow and Python objects beside its data (13
# arrays, their buffers, the batch): 16,384 one-row files held 270 MB where their data is 30 MB.
# Such batches are combined into one every COMPACT_BATCHES, so a shard's worth of small files
# holds its data, not its objects; a batch of more rows than SMALL_BATCH_ROWS pays its own way.
COMPACT_BATCHES = 256
SMALL_BATCH_ROWS = 8


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
        self._batches: list[pa.RecordBatch] = []  # whole files, one batch or many per batch
        self._small: list[pa.RecordBatch] = []  # small files' own batches, to be combined
        self._rows = 0

    def add(self, batch: pa.RecordBatch) -> dict | None:
        """Buffer one file's rows; writes (and returns) a shard once the buffer is full."""
        self.append(batch)
        return self.flush() if self.full else None

    def append(self, batch: pa.RecordBatch) -> None:
        self._rows += batch.num_rows
        if batch.num_rows > SMALL_BATCH_ROWS:
            self._batches.append(batch)
            return
        self._small.append(batch)
        if len(self._small) >= COMPACT_BATCHES:
            self._batches.append(_combined(self._small, self.dim))
            self._small = []

    @property
    def full(self) -> bool:
        return self._rows >= self.rows_per_shard

    @property
    def batches(self) -> int:
        """The Arrow batches held (what the compaction bounds)."""
        return len(self._batches) + len(self._small)

    def flush(self) -> dict | None:
        """Write what is buffered as one shard; its record {"path", "rows", "files", "bytes", "sha256"}."""
        shard = self.take()
        return shard() if shard is not None else None

    def take(self) -> Callable[[], dict] | None:
        """What is buffered, as a call that writes it as one shard (on any thread: it touches
        nothing of the buffer's), and the buffer starts over; None when empty."""
        batches = self._batches + self._small
        if not batches:
            return None
        self._batches, self._small, self._rows = [], [], 0
        return functools.partial(write_shard, batches, self.directory, self.dim)


def _combined(batches: list[pa.RecordBatch], dim: int) -> pa.RecordBatch:
    return pa.Table.from_batches(batches, schema=row_schema(dim)).combine_chunks().to_batches()[0]


def write_shard(batches: list[pa.RecordBatch], directory: str, dim: int) -> dict:
    """Whole files' batches → one shard sorted by path (each file's rows in chunk order);
    its record."""
    table = pa.Table.from_batches(batches, schema=row_schema(dim)).sort_by(
        [("path", "ascending"), ("chunk_index", "ascending")])
    name = f"{SHARD_PREFIX}{uuid.uuid4().hex}.parquet"
    stored = write_table(table, storage.join(directory, name))
    return {"path": name, "rows": table.num_rows,
            "files": pc.count_distinct(table.column("path")).as_py(), "bytes": stored.bytes,
            "sha256": stored.sha256}
