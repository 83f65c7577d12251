"""ReuseKnownVectors: never embed a chunk twice.

When a changed file is re-indexed, most of its chunks usually have the same text as before;
after a killed or failed run, the resume journal holds what it embedded. The launcher writes
the previous vectors of changed files and the journal's, keyed by a hash of the chunk text,
to a Parquet file in the staging folder; this DoFn loads it once per worker and answers those
chunks directly, passing only new text on to the embedder. Vectors are comparable because a
re-index only happens when the fingerprint (embedder, model, dim, chunker) is unchanged.

Example::

    found = chunks | ReuseKnownVectors("/staging/_reuse.parquet")
    # found["vectors"]: (path, (indices, float32 rows as bytes));
    # found["missing"]: (path, [(index, text), …])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa

from ..layout.schema import REUSE_TABLE  # noqa: F401 - where the pipeline's callers find it
from ..runtime import counters
from ..runtime.link import EMBEDDED, RunLink
from ..runtime.outputs import by_name
from ..source import storage
from .journal import KEY_BYTES, text_key

MISSING = "missing"


def write_reuse_table(target: str, dim: int, shard_paths: Sequence[str] = (),
                      paths: set[str] = frozenset(),
                      journal: Iterable[tuple[bytes, bytes]] = ()) -> int:
    """Vectors by text hash, for ReuseKnownVectors: the previous snapshot's rows of `paths`
    (changed files) and the resume journal's blocks; returns the row count (0: nothing
    written)."""
    wanted = sorted(paths)
    keys: list[pa.Array] = []
    values: list[pa.Array] = []
    for shard in shard_paths if wanted else ():
        # Shards are sorted by path: row-group statistics skip groups without wanted files.
        table = storage.read_parquet(shard, columns=["path", "content", "vector"],
                                     filters=[("path", "in", wanted)])
        if table.num_rows:
            keys.append(pa.array([text_key(t) for t in table["content"].to_pylist()],
                                 pa.binary(KEY_BYTES)))
            values.append(table["vector"].combine_chunks().flatten())
    for block_keys, rows in journal:
        count = len(block_keys) // KEY_BYTES
        keys.append(pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(KEY_BYTES), count, [None, pa.py_buffer(block_keys)]))
        values.append(pa.array(np.frombuffer(rows, np.float32)))
    if not keys:
        return 0
    vectors = pa.FixedSizeListArray.from_arrays(pa.concat_arrays(values), dim)
    reuse = pa.table({"key": pa.concat_arrays(keys), "vector": vectors})
    storage.write_parquet(reuse, target, compression="zstd")
    return reuse.num_rows


class ReuseVectorsFn(beam.DoFn):
    """A file's chunks (path, [(index, text), …]) → a vector block (path, (indices, bytes)) of
    the known ones; tagged `missing`: (path, [(index, text), …]) for the rest."""

    def __init__(self, table_path: str | None, progress: RunLink | None = None):
        self.table_path = table_path
        self.progress = progress or RunLink(None)
        self.reused = counters.counter(counters.CHUNKS_REUSED)

    def setup(self):
        self.progress.setup()
        self._known: dict[bytes, int] = {}  # text hash → row of self._rows
        if self.table_path and storage.exists(self.table_path):
            table = storage.read_parquet(self.table_path)
            flat = table["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
            self._rows = flat.reshape(table.num_rows, -1).astype("float32", copy=False)
            self._known = {key: row for row, key in enumerate(table["key"].to_pylist())}

    def process(self, element):
        self.progress.checkpoint()
        path, chunks = element
        found, vectors, missing = [], [], []
        for index, text in chunks:
            row = self._known.get(text_key(text)) if self._known else None
            if row is None:
                missing.append((index, text))
            else:
                found.append(index)
                vectors.append(self._rows[row].tobytes())
        if found:
            self.reused.inc(len(found))
            self.progress.send({"k": EMBEDDED, "p": {path: len(found)}})
            yield path, (found, b"".join(vectors))
        if missing:
            yield beam.pvalue.TaggedOutput(MISSING, (path, missing))

    def finish_bundle(self):
        self.progress.flush()

    def teardown(self):
        self.progress.close()


class ReusedVectors(NamedTuple):
    """ReuseKnownVectors' outputs."""

    vectors: beam.PCollection  # (path, (indices, float32 rows as bytes)): taken as they were
    missing: beam.PCollection  # (path, [(index, text), …]): still to embed

    __getitem__ = by_name


class ReuseKnownVectors(beam.PTransform):
    """Split chunks into ReusedVectors(vectors, missing)."""

    def __init__(self, table_path: str | None, progress: RunLink | None = None):
        super().__init__()
        self.table_path = table_path
        self.progress = progress

    def expand(self, chunks):
        outputs = chunks | "Reuse" >> beam.ParDo(
            ReuseVectorsFn(self.table_path, self.progress)).with_outputs(MISSING, main="vectors")
        return ReusedVectors(outputs.vectors, outputs[MISSING])
