"""Cooperative cancellation that reaches DoFns on any runner, plus the runner's own cancel.

FnApiRunner's `run()` has no cancel handle, so DoFns check a flag and raise. A flag in memory
would not reach worker processes (multi_processing, portable and distributed runners), so the
flag is a file in the run's staging folder on OUT's filesystem, the one place every worker can
reach. On a local folder a DoFn looks at it at most every 0.1 s; on an object store a daemon
thread per worker process looks every second, so no DoFn waits on a request. Where the runner
can cancel a job (portable runners, Dataflow), the launcher also calls its `cancel()`.

Example::

    token = CancelToken()
    token.bind(staging / "_cancel")      # launcher
    check = token.check()                # pickled into DoFns; check() raises Cancelled
    with token.also_calls(result.cancel):
        result.wait_until_finish()
    token.cancel()                       # any thread
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from ..errors import RunError
from ..source import storage

log = logging.getLogger(__name__)

_CHECK_INTERVAL_S = 0.1
_REMOTE_CHECK_INTERVAL_S = 1.0
# A watcher no DoFn has asked for this long ends: its run is over (a long-lived process, such
# as a service calling the face, runs many).
_REMOTE_IDLE_S = 10.0


class Cancelled(RunError):
    """The run was cancelled; nothing was committed."""


class _RemoteFlag:
    """A daemon thread per worker process that looks for a remote flag every second, while
    DoFns keep asking (`raised`)."""

    def __init__(self, path: str):
        self.path = path
        self._raised = False
        self._asked = time.monotonic()
        self.stopped = False
        threading.Thread(target=self._loop, name="cancel-flag", daemon=True).start()

    @property
    def raised(self) -> bool:
        self._asked = time.monotonic()
        return self._raised

    def _loop(self) -> None:
        while (not self._raised and not self.stopped
               and time.monotonic() - self._asked < _REMOTE_IDLE_S):
            try:
                self._raised = storage.exists(self.path)
            except Exception as exc:  # noqa: BLE001 - a failed look is retried; never fatal
                log.debug("cannot look for the cancel flag %s: %s", self.path, exc)
            time.sleep(_REMOTE_CHECK_INTERVAL_S)
        with _remote_lock:
            if _remote_flags.get(self.path) is self and not self._raised:
                del _remote_flags[self.path]


_remote_flags: dict[str, _RemoteFlag] = {}
_remote_lock = threading.Lock()


def _remote_flag(path: str) -> _RemoteFlag:
    with _remote_lock:
        flag = _remote_flags.get(path)
        if flag is None:
            flag = _remote_flags[path] = _RemoteFlag(path)
        return flag


def stop_watching(path: str) -> None:
    """The run of this flag has ended: this process's watcher (an in-process worker's) makes no
    further request."""
    with _remote_lock:
        flag = _remote_flags.pop(path, None)
    if flag is not None:
        flag.stopped = True


class CancelCheck:
    """Picklable check used inside DoFns."""

    def __init__(self, path: str | None):
        self.path = path
        self._next = 0.0
        self._seen = False
        self._local = path is None or storage.is_local(path)

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def __call__(self) -> None:
        if self.path is None:
            return
        if not self._seen:
            if self._local:
                now = time.monotonic()
                if now >= self._next:
                    self._next = now + _CHECK_INTERVAL_S
                    self._seen = storage.exists(self.path)
            else:
                self._seen = _remote_flag(self.path).raised
        if self._seen:
            raise Cancelled("cancellation requested")


class CancelToken:
    """Launcher side: `cancel()` from any thread, idempotent."""

    def __init__(self):
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._path: str | None = None
        self._hooks: list[Callable[[], object]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def bind(self, path: str) -> None:
        with self._lock:
            self._path = path
            if self._event.is_set():
                self._raise_flag()

    def cancel(self, wait: bool = False) -> None:
        """Raise the flag, and call the runner's cancel (on a thread; joined when `wait`)."""
        with self._lock:
            first = not self._event.is_set()
            self._event.set()
            if self._path is not None:
                self._raise_flag()
            hooks = list(self._hooks) if first else []
        callers = [threading.Thread(target=_call_hook, args=(hook,), daemon=True,
                                    name="runner-cancel") for hook in hooks]
        for caller in callers:
            caller.start()
        if wait:
            for caller in callers:
                caller.join(timeout=30)

    @contextlib.contextmanager
    def also_calls(self, hook: Callable[[], object]) -> Iterator[None]:
        """While inside, a cancel also calls `hook` (a runner's own cancel); at once when the
        token is already cancelled."""
        with self._lock:
            self._hooks.append(hook)
            already = self._event.is_set()
        if already:
            _call_hook(hook)
        try:
            yield
        finally:
            with self._lock:
                self._hooks.remove(hook)

    def _raise_flag(self) -> None:
        try:
            # Not empty: an object store cannot take a zero-byte upload through FileSystems.
            storage.write_bytes(self._path, b"cancel\n")
        except Exception as exc:  # noqa: BLE001 - staging gone (the run has ended) or unwritable
            log.warning("cannot raise the cancel flag %s: %s", self._path, exc)

    def check(self) -> CancelCheck:
        return CancelCheck(self._path)

    def release(self) -> None:
        """The run has ended: a later cancel raises no flag (the staging folder that held it
        is being discarded, and a flag written after that would bring it back), and this
        process's watcher of the flag stops."""
        with self._lock:
            path, self._path = self._path, None
        if path is not None:
            stop_watching(path)

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled("cancellation requested")


def _call_hook(hook: Callable[[], object]) -> None:
    try:
        hook()
    except NotImplementedError:
        log.info("the runner cannot cancel a job; its workers stop at the cancel flag")
    except Exception as exc:  # noqa: BLE001 - the flag still stops the workers
        log.warning("the runner's cancel failed (%s: %s); its workers stop at the cancel "
                    "flag", type(exc).__name__, exc)
