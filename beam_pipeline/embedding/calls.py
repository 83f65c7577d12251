"""Calling an embedder: failure isolation, timing, and helper processes for GIL-bound embedders.

Pure (no Beam), so EmbedBatch, the benchmark and a helper process share it.

A pure-Python embedder (`Embedder.gil_bound`, e.g. `hashing`) holds the GIL for its whole call,
so on one Beam worker it takes turns with the pipeline's own Python work. `EmbedderProcesses`
runs it in helper interpreters instead (`python -m beam_pipeline.embedding.calls`, started clean:
no copy of the caller's main module, no fork of a threaded process); the calling threads only
wait on pipes, and the pipeline and the embedder use two cores.

Example::

    with EmbedderProcesses(HashingEmbedder(), count=1) as helpers:
        outcomes, calls, seconds = helpers.embed([("a.py", 0, "def f(): pass")])
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Self

import numpy as np

from ..embedders import ConfigurationError, Embedder

log = logging.getLogger(__name__)

_PIPE_BYTES = 1 << 20


def embed_isolating(embedder: Embedder, batch: list) -> tuple[list, int]:
    """One outcome per chunk — vector bytes, or the reason (str) its embedding failed — and the
    number of embedder calls made. A failing batch is bisected down to its bad chunks; a
    ConfigurationError is raised at once."""
    try:
        vectors = checked_embed(embedder, [text for _, _, text in batch])
    except ConfigurationError:
        raise  # one mistake for the whole run: splitting the batch would only repeat it
    except Exception as exc:  # noqa: BLE001 - any other failure is isolated, never fatal
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
    """One helper interpreter, the two pipes to it, and a thread that reads its answers.

    Batches are queued in the request pipe while the helper works, so it starts the next one
    the moment it answers; answers come back in order and resolve the batches' futures.
    """

    def __init__(self, embedder: Embedder, on_death: Callable[[_Helper, list], None]):
        self.process, self.requests, self.answers = start_helper(__name__)
        self._lock = threading.Lock()  # guards the pending queue and `alive`
        self._send_lock = threading.Lock()
        self._pending: collections.deque[tuple[Future, list]] = collections.deque()
        self.alive = True
        self._on_death = on_death
        self._reader = threading.Thread(target=self._read_answers, daemon=True,
                                        name=f"embed-helper-{self.process.pid}")
        try:
            self.requests.send(embedder)
        except Exception:
            self.requests.close()
            self.answers.close()
            self.process.kill()
            self.process.wait()
            raise
        self._reader.start()

    @property
    def queued(self) -> int:
        return len(self._pending)

    def submit(self, batch: list) -> Future | None:
        """The batch's future, or None when this helper is gone."""
        future: Future = Future()
        # Queue order must be send order. The reader never waits for `_send_lock`: a send
        # blocked on a full pipe cannot stop the answers that drain it.
        with self._send_lock:
            with self._lock:
                if not self.alive:
                    return None
                self._pending.append((future, batch))
            try:
                self.requests.send(batch)
            except OSError:
                pass  # it died: the reader hands this batch back with the rest of its queue
        return future

    def _read_answers(self) -> None:
        # This thread owns the answer pipe: closing it under a blocked read is unsafe.
        while True:
            try:
                answer = self.answers.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future, _ = self._pending.popleft()
            future.set_result(answer)
        self.answers.close()
        with self._lock:
            self.alive = False
            orphans, self._pending = list(self._pending), collections.deque()
        self._on_death(self, orphans)

    def stop(self) -> None:
        """Tells the helper to exit once it has answered what is queued."""
        with self._send_lock:  # never under a send in flight: its descriptor could be reused
            if not self.requests.closed:
                self.requests.close()  # the helper sees end-of-file and exits

    def close(self) -> None:
        """`stop`, and return when the helper has exited."""
        self.stop()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if threading.current_thread() is not self._reader:
            self._reader.join()


def start_helper(module: str) -> tuple[subprocess.Popen, Connection, Connection]:
    """`python -m module REQUESTS_FD ANSWERS_FD`: a clean interpreter (no copy of the caller's
    main module, no fork of a threaded process), and the Connections that send it requests
    and receive its answers."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    for fd in (to_child_w, from_child_w):
        _widen_pipe(fd)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(to_child_r), str(from_child_w)],
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
    return process, Connection(to_child_w, readable=False), Connection(from_child_r,
                                                                        writable=False)


def _widen_pipe(fd: int) -> None:
    # A queued batch (or an answer) larger than the default 64 KiB pipe would block its sender
    # until the other side reads; 1 MiB is Linux's limit for unprivileged users.
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (AttributeError, OSError):
        pass  # not Linux, or a lower limit: sends only block sooner


class EmbedderProcesses:
    """`count` helper processes, each with its own copy of `embedder` (loaded there).

    `submit(batch)` returns a Future of `(outcomes, calls, seconds)` and never waits for a
    helper: the batch is queued to the first helper holding fewer than `fill_first` batches,
    else to the least busy one (with `fill_first` 1, to an idle or else the least busy one).
    A helper that cannot start or dies (OOM killer, crash) is not replaced: its batches are
    embedded in this process instead, with a warning, so a run never fails or loses chunks
    because of a helper.
    """

    def __init__(self, embedder: Embedder, count: int, fill_first: int = 1):
        self.embedder = embedder
        self.fill_first = fill_first
        self._helpers: list[_Helper] = []
        self._local_loaded = False
        self._local_lock = threading.Lock()
        self._closed = False
        for _ in range(count):
            try:
                self._helpers.append(_Helper(embedder, self._helper_died))
            # E.g. the interpreter is not executable for this user, or the embedder cannot be
            # pickled by value (a class defined inside a function).
            except Exception as exc:  # noqa: BLE001 - a helper is an optimisation, never fatal
                log.warning("cannot start an embedding helper process (%s: %s); embedding in "
                            "this process instead", type(exc).__name__, exc)
                break

    def submit(self, batch: list) -> Future:
        if self._closed:
            raise RuntimeError("the embedding helpers were closed")
        # The first helper holding fewer than `fill_first` batches takes it, else the least
        # busy: when batches come slower than one helper embeds them (the syntax chunker's
        # parse is the slow side), one helper does the work, with one token cache, and the
        # others idle instead of taking cores from the pipeline.
        helpers = [h for h in self._helpers if h.queued < self.fill_first] or \
            sorted(self._helpers, key=lambda h: h.queued)
        for helper in helpers:
            future = helper.submit(batch)
            if future is not None:
                return future
        future = Future()
        future.set_result(self._embed_here(batch))
        return future

    def embed(self, batch: list) -> tuple[list, int, float]:
        return self.submit(batch).result()

    def _embed_here(self, batch: list) -> tuple[list, int, float]:
        with self._local_lock:
            if not self._local_loaded:
                self.embedder.load()
                self._local_loaded = True
        return timed_embed(self.embedder, batch)

    def _helper_died(self, helper: _Helper, orphans: list) -> None:
        self._helpers = [h for h in self._helpers if h is not helper]
        if self._closed:
            for future, _ in orphans:
                future.cancel()  # a cancelled run's batches must not be embedded here
            return
        helper.close()  # reaps it: its exit status says why it stopped
        log.warning("embedding helper process %d stopped (exit status %s); embedding its "
                    "batches in this process instead", helper.process.pid,
                    helper.process.returncode)
        for future, batch in orphans:
            try:
                future.set_result(self._embed_here(batch))
            # E.g. a model that cannot load here: the caller's result() raises it.
            except BaseException as exc:  # noqa: BLE001
                future.set_exception(exc)

    def close(self) -> None:
        self._closed = True
        helpers, self._helpers = self._helpers, []
        for helper in helpers:
            helper.stop()  # all at once: they shut down in parallel
        for helper in helpers:
            helper.close()

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
    # Every answer is in the pipe and nothing else needs cleaning up: skipping the
    # interpreter's teardown (~0.1 s with numpy loaded) lets the launcher's close() return
    # sooner.
    sys.stderr.flush()
    os._exit(0)
