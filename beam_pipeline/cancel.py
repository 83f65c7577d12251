"""Cooperative cancellation that reaches DoFns in any runner mode.

FnApiRunner's `run()` has no cancel handle, so DoFns check a flag and raise. A flag in memory
would not reach worker processes (multi_processing, portable runners), so the flag is a file in
the run's staging folder; DoFns look at it at most every 0.1 s (every second when the output is
on a remote filesystem, where a look is a request).

Example::

    token = CancelToken()
    token.bind(staging / "_cancel")      # launcher
    check = token.check()                # pickled into DoFns; check() raises Cancelled
    token.cancel()                       # any thread
"""

from __future__ import annotations

import threading
import time

from . import storage

_CHECK_INTERVAL_S = 0.1
_REMOTE_CHECK_INTERVAL_S = 1.0


class Cancelled(Exception):
    """The run was cancelled; nothing was committed."""


class CancelCheck:
    """Picklable check used inside DoFns."""

    def __init__(self, path: str | None):
        self.path = path
        self._next = 0.0
        self._seen = False
        local = path is None or storage.is_local(path)
        self._interval = _CHECK_INTERVAL_S if local else _REMOTE_CHECK_INTERVAL_S

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def __call__(self) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not self._seen and now >= self._next:
            self._next = now + self._interval
            self._seen = storage.exists(self.path)
        if self._seen:
            raise Cancelled("cancellation requested")


class CancelToken:
    """Launcher side: `cancel()` from any thread, idempotent."""

    def __init__(self):
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._path: str | None = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def bind(self, path: str) -> None:
        with self._lock:
            self._path = path
            if self._event.is_set():
                self._raise_flag()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            if self._path is not None:
                self._raise_flag()

    def _raise_flag(self) -> None:
        try:
            storage.write_bytes(self._path, b"")
        except OSError:
            pass  # staging already gone: the run has ended

    def check(self) -> CancelCheck:
        return CancelCheck(self._path)

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled("cancellation requested")
