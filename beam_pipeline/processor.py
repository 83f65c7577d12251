"""HighThroughputProcessor: the replaced thread-pool indexer's face, on the Beam pipeline.

Callers of the old `process_files_high_throughput` keep their code: the same call forms, the
same callback signature and lines. The run itself is `run_index` over the listed files (the
rest of the live snapshot is carried forward), in a worker thread; every callback is made on
the caller's thread from a queue fed by the pipeline's progress channel.

Example::

    processor = HighThroughputProcessor("repo", "index")
    stats = processor.process_files_high_throughput(["a.py", "b.py"], 4, 50, print)
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .embedders import DEFAULT_EMBEDDER, Embedder
from .layout.schema import INDEXED
from .run.indexing import NothingCommitted, RunRequest, run_index
from .run.progress import ProgressTracker
from .run.settings import IndexSettings
from .run.stats import ProcessingStats
from .runtime.cancel import CancelToken
from .search.reader import Index
from .source.discover import DEFAULT_MAX_FILE_SIZE, is_url, relative_to_root
from .source.text import AUTO

log = logging.getLogger(__name__)

QUEUED = "📥 Queued for processing"
COMPLETED = "✅ Completed"
INTERRUPT = "INTERRUPT"
# An info line whenever nothing else was said for this long (the promise is: never 2 s).
HEARTBEAT_S = 0.5
_FINISHED = object()

ProgressCallback = Callable[..., object]


@dataclass
class FileProcessingResult:
    success: bool
    file_path: str
    chunks_processed: int
    processing_time: float
    error: str | None = None


class _Caller:
    """Calls the user's callback: exceptions are logged and ignored, INTERRUPT cancels."""

    def __init__(self, callback: ProgressCallback | None, on_interrupt: Callable[[], None]):
        self.callback = callback
        self.on_interrupt = on_interrupt
        self.last = time.monotonic()

    def __call__(self, current: int, total: int, path: str, info: str | None = None) -> None:
        self.last = time.monotonic()
        if self.callback is None:
            return
        try:
            answer = self.callback(current, total, path, info=info)
        except Exception:
            log.exception("progress callback raised; ignored")
            return
        if answer == INTERRUPT:
            self.on_interrupt()


class HighThroughputProcessor:
    """Index files of `codebase_dir` into `output_dir` with the Beam pipeline (local folders,
    or URLs on a filesystem Beam has installed, whose flags go in `pipeline_args`).

    Options: `chunk_size`, `chunk_overlap`, `chunker` ("auto", "syntax" or "fixed"),
    `max_file_size`, `embedding_dim`, `keep`, `pipeline_args` (Beam flags, e.g.
    ["--direct_running_mode=multi_processing"]).
    """

    def __init__(self, codebase_dir: str | os.PathLike, output_dir: str | os.PathLike,
                 embedder: str | Embedder = DEFAULT_EMBEDDER, *, chunk_size: int | None = None,
                 chunk_overlap: int | None = None, chunker: str = AUTO,
                 max_file_size: int = DEFAULT_MAX_FILE_SIZE,
                 embedding_dim: int | None = None, keep: int = 3, pipeline_args: Sequence[str] = ()):
        # Local folders as Paths, as the replaced system had them; URLs (s3://…) as given.
        self.codebase_dir = (os.fspath(codebase_dir) if is_url(codebase_dir)
                             else Path(codebase_dir).resolve())
        self.output_dir = os.fspath(output_dir) if is_url(output_dir) else Path(output_dir)
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.chunker = chunker
        self.max_file_size = max_file_size
        self.embedding_dim = embedding_dim
        self.keep = keep
        self.pipeline_args = list(pipeline_args)
        self.cancelled = False
        self.file_results: list[FileProcessingResult] = []
        self._token = CancelToken()
        self._lock = threading.Lock()

    def request_cancellation(self) -> None:
        """Stop the running call promptly; nothing of it is committed. Any thread; idempotent."""
        with self._lock:
            self.cancelled = True
            self._token.cancel()

    def process_files_high_throughput(self, files: Sequence[str | os.PathLike],
                                      vector_thread_count: int, batch_size: int = 50,
                                      progress_callback: ProgressCallback | None = None,
                                      slot_tracker: object | None = None,
                                      fts_manager: object | None = None) -> ProcessingStats:
        """Index `files` (the rest of the live snapshot is carried forward); see the README.

        `slot_tracker` and `fts_manager`, which newer callers of the replaced system pass, are
        accepted and ignored: progress comes through `progress_callback`, and snapshots
        carry their own lexical index (built with each snapshot).
        """
        del slot_tracker, fts_manager
        paths = [os.fspath(f) for f in files]
        with self._lock:
            self.cancelled = False
            token = self._token = CancelToken()
        say = _Caller(progress_callback, self.request_cancellation)
        submitted = time.monotonic()
        for path in paths:  # no file I/O here: the queue confirms at once
            say(0, 0, path, info=QUEUED)

        events: queue.SimpleQueue = queue.SimpleQueue()
        tracker = ProgressTracker(total_files=len(paths), on_file_done=events.put)
        settings = IndexSettings.create(
            self.embedder, chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap,
            chunker=self.chunker,
            batch_size=batch_size, max_file_size=self.max_file_size,
            embedding_dim=self.embedding_dim, embed_concurrency=max(1, vector_thread_count))
        request = RunRequest(files=paths, keep=self.keep, cancel=token, tracker=tracker)
        outcome: dict = {}

        def work() -> None:
            try:
                outcome["stats"] = run_index(
                    self.codebase_dir, self.output_dir, settings, request,
                    pipeline_options=self.pipeline_args)
            except NothingCommitted as exc:  # every file failed: the caller gets the stats
                outcome["stats"] = exc.stats
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                outcome["error"] = exc
            finally:
                events.put(_FINISHED)

        worker = threading.Thread(target=work, name="beam-index-run", daemon=True)
        worker.start()
        given = {relative_to_root(self.codebase_dir, p): p for p in paths}
        finished: dict[str, float] = {}
        while True:
            try:
                item = events.get(timeout=0.1)
            except queue.Empty:
                item = None
            if item is _FINISHED:
                break
            if item is not None:
                finished[item] = time.monotonic() - submitted
                say(len(finished), len(paths), given.get(item, item),
                    info=self._progress_line(len(finished), len(paths), tracker,
                                             vector_thread_count, item))
            elif time.monotonic() - say.last >= HEARTBEAT_S:
                say(0, 0, "", info=self._heartbeat(tracker, len(finished), len(paths)))
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        stats: ProcessingStats = outcome["stats"]
        stats.vector_thread_count, stats.batch_size = vector_thread_count, batch_size
        self.file_results = self._results(given, stats, finished)
        if stats.committed or stats.up_to_date:
            say(len(paths), len(paths), "", info=COMPLETED)
        return stats

    @staticmethod
    def _progress_line(done: int, total: int, tracker: ProgressTracker, threads: int,
                       path: str) -> str:
        fps, kbps = tracker.rates()
        pct = 100 * done // total if total else 100
        return (f"{done}/{total} files ({pct}%) | {fps:.1f} files/s | {kbps:.1f} KB/s | "
                f"{threads} threads | 📊 {os.path.basename(path)}")

    @staticmethod
    def _heartbeat(tracker: ProgressTracker, done: int, total: int) -> str:
        elapsed = time.monotonic() - tracker.started
        return (f"⏳ {tracker.current_stage()} | {done}/{total} files | chunks "
                f"{tracker.chunks_cut} cut, {tracker.chunks_embedded} embedded | "
                f"{tracker.files_assembled} assembled | {elapsed:.1f}s")

    def _results(self, given: dict[str, str], stats: ProcessingStats,
                 finished: dict[str, float]) -> list[FileProcessingResult]:
        if not stats.committed:
            # Cancelled (or nothing to do): files count as processed when fully embedded.
            return [FileProcessingResult(rel in finished, path, 0, finished.get(rel, 0.0),
                                         None if rel in finished else "cancelled")
                    for rel, path in given.items()]
        files = Index.open(self.output_dir).files_table()
        files = files.filter(pc.is_in(files["path"], value_set=pa.array(list(given), pa.string())))
        by_path = {row["path"]: row for row in files.to_pylist()}
        results = []
        for rel, path in given.items():
            row = by_path.get(rel)
            if row is None:
                results.append(FileProcessingResult(False, path, 0, 0.0, "skipped"))
                continue
            ok = row["status"] == INDEXED
            error = None if ok else f"{row['status']}: {row['error']}"
            results.append(FileProcessingResult(ok, path, row["total_chunks"] if ok else 0,
                                                finished.get(rel, 0.0), error))
        return results
