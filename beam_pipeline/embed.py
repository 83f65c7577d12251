"""EmbedChunks: batch chunks across files and embed each batch with one embedder call.

A batch that fails is split in halves until the failing chunks are isolated, so one bad chunk
fails only its own file (the assemble step turns a chunk error into a file failure) and the rest
of the batch is embedded.
"""

from __future__ import annotations

import collections
import logging

import apache_beam as beam
import numpy as np

from . import stats
from .embedders import Embedder
from .progress import EMBEDDED, RunLink

log = logging.getLogger(__name__)

ERRORS = "errors"


class EmbedBatch(beam.DoFn):
    """list[(path, index, text)] → (path, (index, float32 bytes)); tagged `errors`: (path, (index, reason))."""

    def __init__(self, embedder: Embedder, progress: RunLink | None = None):
        self.embedder = embedder
        self.progress = progress or RunLink(None)
        self.batches = stats.counter(stats.EMBED_BATCHES)
        self.embedded = stats.counter(stats.CHUNKS_EMBEDDED)
        self.errors = stats.counter(stats.CHUNK_ERRORS)

    def setup(self):
        # Once per worker: a model loads here, never per bundle.
        self.embedder.load()

    def process(self, batch):
        self.progress.checkpoint()
        done: collections.Counter = collections.Counter()
        for (path, index, _), outcome in zip(batch, self._embed_isolating(batch)):
            done[path] += 1
            if isinstance(outcome, str):
                self.errors.inc()
                yield beam.pvalue.TaggedOutput(ERRORS, (path, (index, outcome)))
            else:
                self.embedded.inc()
                yield path, (index, outcome)
        self.progress.send({"k": EMBEDDED, "p": dict(done)})

    def _embed_isolating(self, batch) -> list:
        """One outcome per chunk: vector bytes, or the reason (str) its embedding failed."""
        try:
            vectors = self._embed([text for _, _, text in batch])
        except Exception as exc:  # noqa: BLE001 - any embedder failure is isolated, never fatal
            if len(batch) == 1:
                path, index, _ = batch[0]
                log.warning("embedding failed for %s chunk %d: %s", path, index, exc)
                return [f"embedding failed: {type(exc).__name__}: {exc}"]
            half = len(batch) // 2
            return self._embed_isolating(batch[:half]) + self._embed_isolating(batch[half:])
        return [row.tobytes() for row in vectors]

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.batches.inc()
        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        expected = (len(texts), self.embedder.dim)
        if vectors.shape != expected:
            raise ValueError(f"embedder returned shape {vectors.shape}, expected {expected}")
        if not np.isfinite(vectors).all():
            raise ValueError("embedder returned non-finite values")
        return vectors

    def teardown(self):
        self.progress.close()


class EmbedChunks(beam.PTransform):
    """(path, index, text) → {"vectors": (path, (index, bytes)), "errors": (path, (index, reason))}.

    Example::

        embedded = chunks | EmbedChunks(HashingEmbedder(), batch_size=64)
    """

    def __init__(self, embedder: Embedder, batch_size: int, progress: RunLink | None = None):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.embedder = embedder
        self.batch_size = batch_size
        self.progress = progress

    def expand(self, chunks):
        outputs = (
            chunks
            # Both bounds explicit: Beam's adaptive default starts at batches of ~1.
            | "Batch" >> beam.BatchElements(
                min_batch_size=self.batch_size, max_batch_size=self.batch_size
            )
            | "Embed" >> beam.ParDo(EmbedBatch(self.embedder, self.progress)).with_outputs(
                ERRORS, main="vectors"
            )
        )
        return {"vectors": outputs.vectors, "errors": outputs[ERRORS]}
