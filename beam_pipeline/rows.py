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

from . import storage
from .language import detect_language
from .records import FileRecord
from .schema import SHARD_PREFIX, chunk_id, row_schema, write_table


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
# little to write after the last one: on the standard library (37,748 rows) 16,384 rather than
# 65,536 rows a shard took the run from 6.0–6.6 s to 5.6–5.8 s.
DEFAULT_ROWS_PER_SHARD = 16_384


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
        """Buffer one file's rows; writes (and returns) a shard once the buffer is full."""
        self.append(batch)
        return self.flush() if self.full else None

    def append(self, batch: pa.RecordBatch) -> None:
        self._batches.append(batch)
        self._rows += batch.num_rows

    @property
    def full(self) -> bool:
        return self._rows >= self.rows_per_shard

    def flush(self) -> dict | None:
        """Write what is buffered as one shard; its record {"path", "rows", "files", "bytes"}."""
        shard = self.take()
        return shard() if shard is not None else None

    def take(self) -> Callable[[], dict] | None:
        """What is buffered, as a call that writes it as one shard (on any thread: it touches
        nothing of the buffer's), and the buffer starts over; None when empty."""
        if not self._batches:
            return None
        batches, self._batches, self._rows = self._batches, [], 0
        return functools.partial(write_shard, batches, self.directory, self.dim)


def write_shard(batches: list[pa.RecordBatch], directory: str, dim: int) -> dict:
    """Whole files' batches → one shard sorted by path; its record."""
    # Each batch is one file's rows in chunk order: ordering the batches sorts the shard
    # without copying any row.
    batches.sort(key=lambda batch: batch.column(1)[0].as_py())
    table = pa.Table.from_batches(batches, schema=row_schema(dim))
    name = f"{SHARD_PREFIX}{uuid.uuid4().hex}.parquet"
    size = write_table(table, storage.join(directory, name))
    return {"path": name, "rows": table.num_rows, "files": len(batches), "bytes": size}
