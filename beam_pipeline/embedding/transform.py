"""EmbedChunks: batch chunks across files and embed each batch with one embedder call.

Chunks arrive one element per file, `(path, [(index, text), …])`; BatchChunks cuts them into
batches of exactly `batch_size` chunks across file boundaries (Beam's BatchElements would need
one element per chunk, and Beam's per-element work is most of the pipeline's own cost).

A batch that fails is split in halves until the failing chunks are isolated, so one bad chunk
fails only its own file (the assemble step turns a chunk error into a file failure) and the rest
of the batch is embedded.
"""

from __future__ import annotations

import collections
import functools
import logging
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import NamedTuple

import apache_beam as beam

from ..embedders import Embedder
from ..errors import UsageError
from ..runtime import counters, faults
from ..runtime.bundles import at_bundle_end, in_global_window
from ..runtime.faults import fault_point
from ..runtime.link import EMBEDDED, RunLink
from ..runtime.outputs import by_name
from .calls import EmbedderProcesses, timed_embed
from .journal import JournalSpec, JournalWriter, text_key

log = logging.getLogger(__name__)

ERRORS = "errors"
QUEUED_PER_HELPER = 3


class BatchChunks(beam.DoFn):
    """(path, [(index, text), …]) per file → list[(path, index, text)] of `batch_size` chunks;
    a batch spans files, and only a bundle's last batch may be smaller.

    Runs in the global window (the indexer is a batch pipeline), like finish_bundle's output.
    """

    def __init__(self, batch_size: int):
        self.batch_size = batch_size

    def start_bundle(self):
        self._pending: list = []

    def process(self, element):
        path, chunks = element
        pending = self._pending
        pending.extend((path, index, text) for index, text in chunks)
        full = len(pending) - len(pending) % self.batch_size
        for start in range(0, full, self.batch_size):
            yield pending[start:start + self.batch_size]
        del pending[:full]

    def finish_bundle(self):
        if self._pending:
            yield in_global_window(self._pending)
            self._pending = []


class EmbedBatch(beam.DoFn):
    """list[(path, index, text)] → a vector block `(path, (indices, float32 rows as bytes))`
    per file of the batch; tagged `errors`: (path, (index, reason)).

    With `concurrency` > 1 and an embedder whose calls overlap (`parallel_calls`), up to that
    many batches are embedded at once on a thread pool (remote providers: requests in flight).
    With `processes` > 0 and a GIL-bound embedder, batches go to that many helper processes
    (embedding.EmbedderProcesses) so the embedder does not take turns with this worker's own
    Python work. Results are emitted as they complete, so one slow call never idles the other
    slots. Beam metrics are per thread, so counting happens here, not in the pool.

    With a `journal`, each batch's vectors are appended to this worker's journal segment
    before they are emitted (journal.py): a run that dies later has still paid for them once.
    """

    def __init__(self, embedder: Embedder, progress: RunLink | None = None, concurrency: int = 1,
                 processes: int = 0, journal: JournalSpec | None = None):
        self.embedder = embedder
        self.progress = progress or RunLink(None)
        self.concurrency = concurrency
        self.processes = processes
        self.journal = journal
        self.batches = counters.counter(counters.EMBED_BATCHES)
        self.embedded = counters.counter(counters.CHUNKS_EMBEDDED)
        self.errors = counters.counter(counters.CHUNK_ERRORS)
        self.embed_ms = counters.counter("embed_ms")

    def setup(self):
        self.progress.setup()
        self._in_flight: dict = {}  # future → its batch
        self._helpers = self._pool = None
        self._journal = JournalWriter(self.journal) if self.journal else None
        if self.processes > 0 and self.embedder.gil_bound:
            # The helpers load their own copies. A few batches queued per helper: each starts
            # the next the moment it answers, while this thread is busy cutting chunks.
            self._limit = QUEUED_PER_HELPER * self.processes
            # All but one of the batches in flight may wait on the first helper (measured on
            # the stdlib with the syntax chunker: one helper took 635 of 652 batches, the run
            # 6.8 s against 7.0-7.3 s; with fixed chunks both helpers still share the work).
            self._helpers = EmbedderProcesses(self.embedder, self.processes,
                                              fill_first=self._limit - 1)
            self._submit = self._helpers.submit
            return
        self.embedder.load()  # once per worker: a model loads here, never per bundle
        embed = functools.partial(timed_embed, self.embedder)
        self._limit = self.concurrency if self.embedder.parallel_calls else 1
        if self._limit > 1:
            self._pool = ThreadPoolExecutor(self._limit, "embed")
            self._submit = functools.partial(self._pool.submit, embed)
        else:
            self._submit = functools.partial(_call_now, embed)

    def process(self, batch):
        self.progress.checkpoint()
        self._in_flight[self._submit(batch)] = batch
        if len(self._in_flight) >= self._limit:
            yield from self._emit_completed(FIRST_COMPLETED)

    def finish_bundle(self):
        if self._in_flight:
            for output in self._emit_completed(ALL_COMPLETED):
                yield at_bundle_end(output)
        if self._journal is not None:
            self._journal.flush()
        self.progress.flush()

    def _emit_completed(self, return_when: str):
        done, _ = wait(self._in_flight, return_when=return_when)
        for future in done:
            yield from self._emit(self._in_flight.pop(future), *future.result())

    def _emit(self, batch, outcomes: list, calls: int, seconds: float):
        self.batches.inc(calls)
        self.embed_ms.inc(round(seconds * 1000))
        for name, value in self.embedder.take_counts().items():
            counters.counter(f"embedder_{name}").inc(value)
        done: collections.Counter = collections.Counter()
        blocks: dict[str, tuple[list, list]] = {}
        for (path, index, _), outcome in zip(batch, outcomes):
            done[path] += 1
            if isinstance(outcome, str):
                self.errors.inc()
                yield beam.pvalue.TaggedOutput(ERRORS, (path, (index, outcome)))
            else:
                indices, rows = blocks.setdefault(path, ([], []))
                indices.append(index)
                rows.append(outcome)
        self.embedded.inc(sum(len(indices) for indices, _ in blocks.values()))
        if self._journal is not None:
            kept = [(text, outcome) for (_, _, text), outcome in zip(batch, outcomes)
                    if not isinstance(outcome, str)]
            self._journal.append(b"".join(text_key(text) for text, _ in kept),
                                 b"".join(outcome for _, outcome in kept), self.embedder.dim)
        # One vector block per file of the batch, not one element per chunk: the per-file
        # grouping handles a few elements per file.
        for path, (indices, rows) in blocks.items():
            yield path, (indices, b"".join(rows))
        self.progress.send({"k": EMBEDDED, "p": dict(done)})
        fault_point("mid-embedding")
        faults.embedded(sum(done.values()))

    def teardown(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._helpers is not None:
            self._helpers.close()
        if self._journal is not None:
            self._journal.close()
        self.progress.close()


def _call_now(fn, batch) -> Future:
    future: Future = Future()
    future.set_result(fn(batch))
    return future


class EmbeddedChunks(NamedTuple):
    """EmbedChunks' outputs."""

    vectors: beam.PCollection  # (path, (indices, float32 rows as bytes))
    errors: beam.PCollection  # (path, (index, reason)): chunks whose embedding failed

    __getitem__ = by_name


class EmbedChunks(beam.PTransform):
    """(path, [(index, text), …]) → EmbeddedChunks(vectors, errors).

    Example::

        embedded = chunks | EmbedChunks(HashingEmbedder(), batch_size=64)
        embedded.vectors | …
    """

    def __init__(self, embedder: Embedder, batch_size: int, progress: RunLink | None = None,
                 concurrency: int = 1, processes: int = 0, journal: JournalSpec | None = None):
        super().__init__()
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        if concurrency < 1:
            raise UsageError(f"embed concurrency must be at least 1, got {concurrency}")
        if processes < 0:
            raise UsageError(f"embed processes must be at least 0, got {processes}")
        self.embedder = embedder
        self.batch_size = batch_size
        self.progress = progress
        self.concurrency = concurrency
        self.processes = processes
        self.journal = journal

    def expand(self, chunks):
        outputs = (
            chunks
            | "Batch" >> beam.ParDo(BatchChunks(self.batch_size))
            | "Embed" >> beam.ParDo(
                EmbedBatch(self.embedder, self.progress, self.concurrency,
                           self.processes, self.journal)).with_outputs(
                ERRORS, main="vectors"
            )
        )
        return EmbeddedChunks(outputs.vectors, outputs[ERRORS])
