"""The DoFns' side of a run: progress events out, cancellation in, the run's filesystem options.

A `RunLink` is pickled into every DoFn. The launcher's side (progress.ProgressChannel and
EventFileChannel, the tracker and the display) is in beam_pipeline/run/progress.py; what they
share is the event kinds and the datagram's format (a JSON list of events, signed with HMAC).
"""

from __future__ import annotations

import atexit
import functools
import gc
import hmac
import json
import socket
import sys
import threading
import time
import weakref

from ..source import storage
from . import event_files
from .cancel import CancelCheck

# Event kinds.
CHUNKED = "c"  # {"k": "c", "p": path, "n": chunks, "b": bytes}; n == 0 finishes the file
EMBEDDED = "e"  # {"k": "e", "p": {path: chunks embedded or failed}}
ASSEMBLED = "a"  # {"k": "a", "n": files}
WRITTEN = "w"  # {"k": "w", "r": rows}

MAX_DATAGRAM = 60_000
MAC_DIGEST = "sha256"
MAC_BYTES = 32
FLUSH_S = 0.05
FLUSH_EVENTS = 256


class RunLink:
    """The DoFns' link to the run: progress out, cancellation in, and the run's filesystem
    options, which every DoFn that touches SOURCE or OUT applies in setup (`setup()`).

    Progress goes over UDP to `address` (the local modes; each datagram signed with `key`, an
    HMAC), or into event files in `events_dir` (any other runner; event_files.py), or nowhere
    when both are None.

    Events are sent in datagrams of many (a JSON list): one per event made the launcher's
    threads trade the GIL with the pipeline's thousands of times a run. The first event leaves
    at once; then a datagram leaves when the oldest waiting event is FLUSH_S old or
    FLUSH_EVENTS wait, on `flush()` (DoFns call it in finish_bundle, so nothing waits past its
    bundle), and from a background thread while a DoFn is stalled (a slow embedding call), so
    the display is never more than 1.5 × FLUSH_S behind.
    Pickles as its route and cancel check only.
    """

    def __init__(self, address: tuple[str, int] | None, cancel: CancelCheck | None = None,
                 events_dir: str | None = None, filesystems: dict | None = None,
                 key: bytes | None = None):
        if address is not None and not key:
            raise ValueError("a progress address needs the run's key")
        self.address = address
        self.key = key
        self.events_dir = events_dir
        self.cancel = cancel or CancelCheck(None)
        self.filesystems = filesystems or {}
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._since = 0.0  # when the oldest waiting event was queued

    def __getstate__(self):
        return {"address": self.address, "cancel": self.cancel, "events_dir": self.events_dir,
                "filesystems": self.filesystems, "key": self.key}

    def __setstate__(self, state):
        RunLink.__init__(self, state["address"], state["cancel"], state.get("events_dir"),
                         state.get("filesystems"), state.get("key"))

    def setup(self) -> None:
        """In DoFn.setup: this worker's FileSystems get the run's options (storage.py)."""
        storage.use_worker_options(self.filesystems)
        if _in_sdk_worker():
            _leave_objects_to_the_os()

    def checkpoint(self) -> None:
        """Raise Cancelled when the launcher asked the run to stop."""
        self.cancel()

    def send(self, event: dict) -> None:
        if self.events_dir is not None:
            event_files.send(self.events_dir, event)
            return
        if self.address is None:
            return
        with self._lock:
            if not self._events:
                self._since = time.monotonic()
            self._events.append(event)
            if (self._sock is None  # the first event goes at once: the run has visibly begun
                    or len(self._events) >= FLUSH_EVENTS
                    or time.monotonic() - self._since >= FLUSH_S):
                self._flush_locked()

    def flush(self, older_than: float = 0.0) -> None:
        """Send what waits (only if it has waited `older_than` seconds)."""
        if self.events_dir is not None:
            event_files.flush(self.events_dir)
            return
        with self._lock:
            if self._events and time.monotonic() - self._since >= older_than:
                self._flush_locked()

    def _flush_locked(self) -> None:
        events, self._events = self._events, []
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            _flusher.watch(self)
        self._send(events)

    def _send(self, events: list[dict]) -> None:
        payload = json.dumps(events, separators=(",", ":")).encode("utf-8", "surrogateescape")
        if len(payload) > MAX_DATAGRAM - MAC_BYTES:
            for part in _halves(events):
                self._send(part)
            return
        try:
            self._sock.sendto(hmac.digest(self.key, payload, MAC_DIGEST) + payload, self.address)
        except OSError:
            pass  # progress is advisory; a full buffer or a gone launcher must not fail the run

    def close(self) -> None:
        if self.events_dir is not None:
            # The final events of this worker: a DoFn's teardown may be the process's last act.
            event_files.flush(self.events_dir, timeout=5.0)
            return
        self.flush()
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _halves(events: list[dict]) -> list[list[dict]]:
    """Two smaller lists of the same events; one event is split by its per-path counts."""
    if len(events) > 1:
        return [events[:len(events) // 2], events[len(events) // 2:]]
    event = events[0]
    per_path = event.get("p")
    if not isinstance(per_path, dict) or len(per_path) < 2:
        return []  # one indivisible event too big for a datagram: progress is advisory
    items = list(per_path.items())
    half = len(items) // 2
    return [[{**event, "p": dict(items[:half])}], [{**event, "p": dict(items[half:])}]]


class _Flusher:
    """One daemon thread per process that sends events a stalled DoFn left waiting."""

    def __init__(self):
        self._lock = threading.Lock()
        self._links: weakref.WeakSet[RunLink] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def watch(self, link: RunLink) -> None:
        with self._lock:
            self._links.add(link)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="progress-flush",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_S / 2)
            with self._lock:
                links = list(self._links)
            for link in links:
                link.flush(older_than=FLUSH_S)


_flusher = _Flusher()


# The module a Beam SDK worker process runs as its main (the multi-process DirectRunner's and
# the portable runners' Python workers).
_SDK_WORKER_MAIN = "apache_beam.runners.worker.sdk_worker_main"


def _in_sdk_worker() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == _SDK_WORKER_MAIN


@functools.cache
def _leave_objects_to_the_os() -> None:
    """At exit, freeze the collector instead of letting it walk and free Beam's ~140,000
    objects one by one (`python -c "import apache_beam"` exits in 150 ms, in 22 ms frozen).
    Only in a process that exists to run bundles: in a launcher, the user's process, only the
    CLI decides that (cli.entry). What this gives up: finalizers of objects that are garbage in
    a reference cycle at exit, which Python never promises to run."""
    atexit.register(gc.freeze)
