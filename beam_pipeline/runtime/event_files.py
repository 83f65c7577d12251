"""Progress through OUT's filesystem, for runners whose workers share nothing with the launcher.

On a distributed runner a worker cannot reach the launcher's loopback, and the launcher may not
be reachable from the workers at all; what every worker can reach is OUT, through Beam's
FileSystems. So each worker process keeps one `EventFileWriter` per run: the DoFns hand it
their events (a list append, never a request on the DoFn's thread), and its thread writes
what has gathered as one new object every `WRITE_EVERY_S`, plus a final one when a DoFn is torn
down. A stage that runs as one long bundle still advances, because writing is timed, not tied
to bundles. The launcher's `progress.EventFileChannel` lists the folder, reads the objects it
has not seen, feeds their events to the tracker and deletes them, so listings stay short.

Objects are never rewritten: `<writer>-<seq>.json`, a JSON list of events (SUFFIX). A retried bundle's
events may be read too; progress is advisory (the tracker counts a file once) and the stats
never come from here.

Costs on an object store: one PUT per worker process per `WRITE_EVERY_S` while it has events,
and for the launcher one LIST every `READ_EVERY_S` plus one GET per object and one batched
DELETE per poll.

Example::

    with progress.EventFileChannel(tracker, "s3://bucket/index/.staging/<id>/_events") as ch:
        link = RunLink(None, events_dir=ch.directory)   # pickled into DoFns
        link.send({"k": "a", "n": 1})                    # on a worker: event_files.send
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

from ..source import storage

log = logging.getLogger(__name__)

EVENTS_DIR = "_events"
WRITE_EVERY_S = 2.0
READ_EVERY_S = 1.0
# A writer with nothing to write for this long ends (its run is over); the next event of the
# same run, if any, starts a new one.
IDLE_S = 30.0
SUFFIX = ".json"


class EventFileWriter:
    """One worker process's events for one run, written as new objects by a daemon thread."""

    def __init__(self, directory: str):
        self.directory = directory
        self._name = uuid.uuid4().hex[:16]
        self._seq = 0
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._loop, name="progress-events", daemon=True)
        self._thread.start()

    def add(self, event: dict) -> None:
        with self._lock:
            self._events.append(event)
            self._idle.clear()

    def flush(self, timeout: float = 0.0) -> None:
        """Write what waits now; wait up to `timeout` seconds for it to be written."""
        self._wake.set()
        if timeout:
            self._idle.wait(timeout)

    def _loop(self) -> None:
        last = time.monotonic()
        while True:
            self._wake.wait(WRITE_EVERY_S)
            self._wake.clear()
            with self._lock:
                events, self._events = self._events, []
            if events:
                self._write(events)
                last = time.monotonic()
            with _writers_lock, self._lock:
                if not self._events:
                    self._idle.set()
                    if time.monotonic() - last >= IDLE_S:
                        _writers.pop(self.directory, None)
                        return

    def _write(self, events: list[dict]) -> None:
        self._seq += 1
        path = storage.join(self.directory, f"{self._name}-{self._seq:08d}{SUFFIX}")
        payload = json.dumps(events, separators=(",", ":")).encode("utf-8", "surrogateescape")
        try:
            if self._seq == 1:
                storage.make_folder(self.directory)
            storage.write_bytes(path, payload)
        except Exception as exc:  # noqa: BLE001 - progress is advisory: never fail the run
            log.debug("progress events not written to %s: %s", path, exc)


_writers: dict[str, EventFileWriter] = {}
_writers_lock = threading.Lock()


def send(directory: str, event: dict) -> None:
    """Hand an event to this process's writer for `directory` (one per run, shared by all its
    DoFns; started on the first event)."""
    with _writers_lock:
        writer = _writers.get(directory)
        if writer is None:
            writer = _writers[directory] = EventFileWriter(directory)
        writer.add(event)  # under the lock: a writer that is ending takes no new event


def flush(directory: str, timeout: float = 0.0) -> None:
    """Write this process's waiting events for `directory` now (waiting up to `timeout`)."""
    with _writers_lock:
        writer = _writers.get(directory)
    if writer is not None:
        writer.flush(timeout)
