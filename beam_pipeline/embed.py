"""EmbedChunks: batch chunks across files and embed each batch with one embedder call.

A batch that fails is split in halves until the failing chunks are isolated, so one bad chunk
fails only its own file (the assemble step turns a chunk error into a file failure) and the rest
of the batch is embedded.
"""

from __future__ import annotations

import collections
import logging
import time
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, ThreadPoolExecutor, wait

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from . import stats
from .embedders import Embedder
from .faults import fault_point
from .progress import EMBEDDED, RunLink

log = logging.getLogger(__name__)

ERRORS = "errors"


def embed_isolating(embedder: Embedder, batch: list) -> tuple[list, int]:
    """One outcome per chunk — vector bytes, or the reason (str) its embedding failed — and the
    number of embedder calls made. A failing batch is bisected down to its bad chunks.

    Pure (no Beam state), so it can run on a worker thread.
    """
    try:
        vectors = _checked_embed(embedder, [text for _, _, text in batch])
    except Exception as exc:  # noqa: BLE001 - any embedder failure is isolated, never fatal
        if len(batch) == 1:
            path, index, _ = batch[0]
            log.warning("embedding failed for %s chunk %d: %s", path, index, exc)
            return [f"embedding failed: {type(exc).__name__}: {exc}"], 1
        half = len(batch) // 2
        left, left_calls = embed_isolating(embedder, batch[:half])
        right, right_calls = embed_isolating(embedder, batch[half:])
        return left + right, 1 + left_calls + right_calls
    return [row.tobytes() for row in vectors], 1


def timed_embed(embedder: Embedder, batch: list) -> tuple[list, int, float]:
    """embed_isolating plus the seconds it took (for the `embed_ms` counter)."""
    started = time.perf_counter()
    outcomes, calls = embed_isolating(embedder, batch)
    return outcomes, calls, time.perf_counter() - started


def _checked_embed(embedder: Embedder, texts: list[str]) -> np.ndarray:
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    expected = (len(texts), embedder.dim)
    if vectors.shape != expected:
        raise ValueError(f"embedder returned shape {vectors.shape}, expected {expected}")
    if not np.isfinite(vectors).all():
        raise ValueError("embedder returned non-finite values")
    return vectors


class EmbedBatch(beam.DoFn):
    """list[(path, index, text)] → (path, [(index, float32 bytes), …]) per file of the batch;
    tagged `errors`: (path, (index, reason)).

    With `concurrency` > 1 and a thread-safe embedder, up to that many batches are embedded at
    once on a thread pool (remote providers: requests in flight). Results are emitted as they
    complete, so one slow request never idles the other slots. Beam metrics are per thread, so
    counting happens here, not in the pool.
    """

    def __init__(self, embedder: Embedder, progress: RunLink | None = None, concurrency: int = 1):
        self.embedder = embedder
        self.progress = progress or RunLink(None)
        self.concurrency = concurrency
        self.batches = stats.counter(stats.EMBED_BATCHES)
        self.embedded = stats.counter(stats.CHUNKS_EMBEDDED)
        self.errors = stats.counter(stats.CHUNK_ERRORS)
        self.embed_ms = stats.counter("embed_ms")

    def setup(self):
        # Once per worker: a model loads here, never per bundle.
        self.embedder.load()
        parallel = self.concurrency > 1 and self.embedder.thread_safe
        self._pool = ThreadPoolExecutor(self.concurrency, "embed") if parallel else None
        self._in_flight: dict = {}  # future → its batch

    def process(self, batch):
        self.progress.checkpoint()
        if self._pool is None:
            yield from self._emit(batch, *timed_embed(self.embedder, batch))
            return
        self._in_flight[self._pool.submit(timed_embed, self.embedder, batch)] = batch
        if len(self._in_flight) >= self.concurrency:
            yield from self._emit_completed(FIRST_COMPLETED)

    def finish_bundle(self):
        if self._in_flight:
            for output in self._emit_completed(ALL_COMPLETED):
                if isinstance(output, beam.pvalue.TaggedOutput):
                    yield beam.pvalue.TaggedOutput(output.tag, _global(output.value))
                else:
                    yield _global(output)

    def _emit_completed(self, return_when: str):
        done, _ = wait(self._in_flight, return_when=return_when)
        for future in done:
            yield from self._emit(self._in_flight.pop(future), *future.result())

    def _emit(self, batch, outcomes: list, calls: int, seconds: float):
        self.batches.inc(calls)
        self.embed_ms.inc(round(seconds * 1000))
        for name, value in self.embedder.take_counts().items():
            stats.counter(f"embedder_{name}").inc(value)
        done: collections.Counter = collections.Counter()
        vectors: dict[str, list] = {}
        for (path, index, _), outcome in zip(batch, outcomes):
            done[path] += 1
            if isinstance(outcome, str):
                self.errors.inc()
                yield beam.pvalue.TaggedOutput(ERRORS, (path, (index, outcome)))
            else:
                vectors.setdefault(path, []).append((index, outcome))
        self.embedded.inc(sum(len(parts) for parts in vectors.values()))
        # One element per file of the batch, not per chunk: the per-file grouping handles a
        # few elements per file instead of one per chunk.
        yield from vectors.items()
        self.progress.send({"k": EMBEDDED, "p": dict(done)})
        fault_point("mid-embedding")

    def teardown(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.progress.close()


def _global(value) -> WindowedValue:
    return WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()])


class EmbedChunks(beam.PTransform):
    """(path, index, text) → {"vectors": (path, [(index, bytes), …]),
    "errors": (path, (index, reason))}.

    Example::

        embedded = chunks | EmbedChunks(HashingEmbedder(), batch_size=64)
    """

    def __init__(self, embedder: Embedder, batch_size: int, progress: RunLink | None = None,
                 concurrency: int = 1):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if concurrency < 1:
            raise ValueError(f"embed concurrency must be at least 1, got {concurrency}")
        self.embedder = embedder
        self.batch_size = batch_size
        self.progress = progress
        self.concurrency = concurrency

    def expand(self, chunks):
        outputs = (
            chunks
            # Both bounds explicit: Beam's adaptive default starts at batches of ~1.
            | "Batch" >> beam.BatchElements(
                min_batch_size=self.batch_size, max_batch_size=self.batch_size
            )
            | "Embed" >> beam.ParDo(
                EmbedBatch(self.embedder, self.progress, self.concurrency)).with_outputs(
                ERRORS, main="vectors"
            )
        )
        return {"vectors": outputs.vectors, "errors": outputs[ERRORS]}
