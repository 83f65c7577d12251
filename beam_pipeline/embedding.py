"""Calling an embedder: failure isolation, timing, and helper processes for GIL-bound embedders.

Pure (no Beam), so EmbedBatch, the benchmark and a helper process share it.

A pure-Python embedder (`Embedder.gil_bound`, e.g. `hashing`) holds the GIL for its whole call,
so on one Beam worker it takes turns with the pipeline's own Python work. `EmbedderProcesses`
runs it in helper interpreters instead (`python -m beam_pipeline.embedding`, started clean:
no copy of the caller's main module, no fork of a threaded process); the calling threads only
wait on pipes, and the pipeline and the embedder use two cores.

Example::

    with EmbedderProcesses(HashingEmbedder(), count=1) as helpers:
        outcomes, calls, seconds = helpers.embed([("a.py", 0, "def f(): pass")])
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Self

import numpy as np

from .embedders import Embedder

log = logging.getLogger(__name__)


def embed_isolating(embedder: Embedder, batch: list) -> tuple[list, int]:
    """One outcome per chunk — vector bytes, or the reason (str) its embedding failed — and the
    number of embedder calls made. A failing batch is bisected down to its bad chunks."""
    try:
        vectors = checked_embed(embedder, [text for _, _, text in batch])
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


def checked_embed(embedder: Embedder, texts: list[str]) -> np.ndarray:
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    expected = (len(texts), embedder.dim)
    if vectors.shape != expected:
        raise ValueError(f"embedder returned shape {vectors.shape}, expected {expected}")
    if not np.isfinite(vectors).all():
        raise ValueError("embedder returned non-finite values")
    return vectors


class _Helper:
    """One helper interpreter and the two pipes to it."""

    def __init__(self, embedder: Embedder):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                # The helper imports what this process can: an embedder class from the
                # caller's own modules unpickles there too.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, sys.path))})
        except OSError:
            for fd in (to_child_w, from_child_r):
                os.close(fd)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.requests = Connection(to_child_w, readable=False)
        self.answers = Connection(from_child_r, writable=False)
        try:
            self.requests.send(embedder)
        except Exception:
            self.close()
            raise

    def embed(self, batch: list) -> tuple[list, int, float]:
        self.requests.send(batch)
        return self.answers.recv()

    def close(self) -> None:
        for conn in (self.requests, self.answers):
            conn.close()  # the helper sees end-of-file and exits
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class EmbedderProcesses:
    """`count` helper processes, each with its own copy of `embedder` (loaded there).

    `embed(batch)` is thread-safe: a caller takes an idle helper, sends the batch, waits for
    the answer with the GIL released. A helper that cannot start or dies (OOM killer, crash)
    is not replaced: its batches are embedded in the calling process instead, with a warning,
    so a run never fails or loses chunks because of a helper.
    """

    def __init__(self, embedder: Embedder, count: int):
        self.embedder = embedder
        self._idle: queue.SimpleQueue[_Helper | None] = queue.SimpleQueue()
        self._helpers: list[_Helper] = []
        for _ in range(count):
            try:
                self._helpers.append(_Helper(embedder))
            # E.g. the interpreter is not executable for this user, or the embedder cannot be
            # pickled by value (a class defined inside a function).
            except Exception as exc:  # noqa: BLE001 - a helper is an optimisation, never fatal
                log.warning("cannot start an embedding helper process (%s: %s); embedding in "
                            "this process instead", type(exc).__name__, exc)
                break
        for helper in self._helpers:
            self._idle.put(helper)
        self._local_loaded = False
        self._local_lock = threading.Lock()
        self._closed = False

    def embed(self, batch: list) -> tuple[list, int, float]:
        if self._closed:
            raise RuntimeError("the embedding helpers were closed")
        if self._helpers:
            helper = self._idle.get()
            if helper is None:
                self._idle.put(None)  # the last helper died: wake the next waiter too
            else:
                try:
                    answer = helper.embed(batch)
                except (EOFError, OSError) as exc:
                    self._drop(helper)  # reaps it: its exit status says why it stopped
                    log.warning("embedding helper process %d stopped (%s, exit status %s); "
                                "embedding in this process instead", helper.process.pid,
                                type(exc).__name__, helper.process.returncode)
                else:
                    self._idle.put(helper)
                    return answer
        with self._local_lock:
            if not self._local_loaded:
                self.embedder.load()
                self._local_loaded = True
        return timed_embed(self.embedder, batch)

    def _drop(self, helper: _Helper) -> None:
        helper.close()
        self._helpers = [h for h in self._helpers if h is not helper]
        if self._helpers:
            return
        self._idle.put(None)  # callers waiting for a helper fall through to local embedding

    def close(self) -> None:
        self._closed = True  # a cancelled run's pending batches must not fall back to local
        for helper in self._helpers:
            helper.close()
        self._helpers = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(requests_fd: int, answers_fd: int) -> None:
    # Ctrl-C reaches the whole process group: the launcher handles it and closes the pipes,
    # which is what ends a helper (quietly, with no traceback of its own).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = Connection(requests_fd, writable=False)
    answers = Connection(answers_fd, readable=False)
    embedder: Embedder | None = None
    while True:
        try:
            message = requests.recv()
            if embedder is None:
                embedder = message
                embedder.load()
            else:
                answers.send(timed_embed(embedder, message))
        except (EOFError, OSError):  # the pipeline finished, or its process died
            return


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
