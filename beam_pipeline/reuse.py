"""ReuseKnownVectors: never embed a chunk twice.

When a changed file is re-indexed, most of its chunks usually have the same text as before.
The launcher writes the previous vectors of changed files, keyed by a hash of the chunk text,
to a Parquet file in the staging folder; this DoFn loads it once per worker and answers those
chunks directly, passing only new text on to the embedder. Vectors are comparable because a
re-index only happens when the fingerprint (embedder, model, dim, chunker) is unchanged.

Example::

    found = chunks | ReuseKnownVectors("/staging/_reuse.parquet")
    # found["vectors"]: (path, (indices, float32 rows as bytes));
    # found["missing"]: (path, [(index, text), …])
"""

from __future__ import annotations

import hashlib

import apache_beam as beam
import pyarrow as pa

from . import stats, storage
from .progress import EMBEDDED, RunLink
from .schema import REUSE_TABLE  # noqa: F401 - where the pipeline's callers find it

MISSING = "missing"


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]


def write_reuse_table(shard_paths: list[str], paths: set[str], target: str) -> int:
    """Previous vectors of the rows of `paths`, keyed by text hash; returns the row count."""
    wanted = sorted(paths)
    keys, vectors = [], []
    for shard in shard_paths:
        # Shards are sorted by path: row-group statistics skip groups without wanted files.
        table = storage.read_parquet(shard, columns=["path", "content", "vector"],
                                     filters=[("path", "in", wanted)])
        if table.num_rows:
            keys.extend(text_key(t) for t in table["content"].to_pylist())
            vectors.append(table["vector"].combine_chunks())
    if not keys:
        return 0
    reuse = pa.table({"key": pa.array(keys, pa.binary(16)),
                      "vector": pa.concat_arrays(vectors)})
    storage.write_parquet(reuse, target, compression="zstd")
    return reuse.num_rows


class ReuseVectorsFn(beam.DoFn):
    """A file's chunks (path, [(index, text), …]) → a vector block (path, (indices, bytes)) of
    the known ones; tagged `missing`: (path, [(index, text), …]) for the rest."""

    def __init__(self, table_path: str | None, progress: RunLink | None = None):
        self.table_path = table_path
        self.progress = progress or RunLink(None)
        self.reused = stats.counter(stats.CHUNKS_REUSED)

    def setup(self):
        self.progress.setup()
        self._known: dict[bytes, bytes] = {}
        if self.table_path and storage.exists(self.table_path):
            table = storage.read_parquet(self.table_path)
            flat = table["vector"].combine_chunks().values.to_numpy(zero_copy_only=False)
            rows = flat.reshape(table.num_rows, -1).astype("float32", copy=False)
            self._known = dict(zip(table["key"].to_pylist(), (r.tobytes() for r in rows)))

    def process(self, element):
        self.progress.checkpoint()
        path, chunks = element
        found, vectors, missing = [], [], []
        for index, text in chunks:
            vector = self._known.get(text_key(text)) if self._known else None
            if vector is None:
                missing.append((index, text))
            else:
                found.append(index)
                vectors.append(vector)
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


class ReuseKnownVectors(beam.PTransform):
    """Split chunks into {"vectors": reused, "missing": still to embed}."""

    def __init__(self, table_path: str | None, progress: RunLink | None = None):
        super().__init__()
        self.table_path = table_path
        self.progress = progress

    def expand(self, chunks):
        outputs = chunks | "Reuse" >> beam.ParDo(
            ReuseVectorsFn(self.table_path, self.progress)).with_outputs(MISSING, main="vectors")
        return {"vectors": outputs.vectors, MISSING: outputs[MISSING]}
