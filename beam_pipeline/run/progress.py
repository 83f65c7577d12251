"""Live progress: a side channel from the DoFns to the launcher, and what the launcher shows.

The per-file grouping is a barrier, so Beam's own output arrives only at the end. Instead the
DoFns send events to the launcher through a `RunLink`, and the launcher's channel feeds them to
a `ProgressTracker`, which knows a file is finished when its last chunk is embedded. The route
is chosen once per run from where the workers are (runners.Placement): in the local modes, JSON
datagrams over UDP on 127.0.0.1 (`ProgressChannel`), which never block a worker, each signed
with the run's secret key, since any local user can send to that port; for any other
runner, event files under the run's staging folder on OUT's filesystem (event_files.py), the one
place every worker can reach. Progress is advisory; the stats come from Beam metrics and the
pipeline's own outputs: a message the channel cannot authenticate or read, or an event that
does not fit the run, is dropped and counted (`dropped`), never raised.

Example::

    tracker = ProgressTracker(total_files=10)
    with ProgressChannel(tracker) as channel:
        link = RunLink(channel.address, key=channel.key)     # pickled into DoFns
        ...
"""

from __future__ import annotations

import collections
import hmac
import json
import logging
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Self, TextIO

from .. import _moved
from ..runtime import event_files
from ..runtime.link import (
    ASSEMBLED,
    CHUNKED,
    EMBEDDED,
    MAC_BYTES,
    MAC_DIGEST,
    WRITTEN,
)
from ..source import storage
from .terminal import printable

log = logging.getLogger(__name__)

# Per-path state when the number of files is not known: bounded whatever arrives.
_PATH_CAP = 1_000_000
RATE_WINDOW_S = 10.0
# Without a single event for this long into the run, the display says per-file progress is
# unavailable (a distributed runner's workers may take minutes to start, or cannot write).
NO_EVENTS_NOTE_S = 10.0


class ProgressTracker:
    """Turns progress events into counts, rates and a stage name. Thread-safe."""

    def __init__(
        self,
        total_files: int = 0,
        on_file_done: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total_files = total_files
        self.on_file_done = on_file_done
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.stage = "starting Beam"
        self.running_since: float | None = None
        self.events = 0
        self.dropped = 0  # events that did not fit the run (malformed, or more files than it has)
        self._pending: dict[str, tuple[int, int]] = {}
        # Hashes of finished paths: a retried bundle's events (event files) count a file once.
        self._finished: set[int] = set()
        self._embedded: collections.Counter = collections.Counter()
        self.files_done = 0
        self.bytes_done = 0
        self.chunks_cut = 0
        self.chunks_embedded = 0
        self.files_assembled = 0
        self.rows_written = 0
        self.current_file = ""
        self._window: collections.deque = collections.deque([(self.started, 0, 0)])

    def set_stage(self, stage: str) -> None:
        with self._lock:
            self.stage = stage
            if stage == "running" and self.running_since is None:
                self.running_since = self._clock()

    def handle(self, event: dict) -> None:
        """Count one event; one that does not fit the run is dropped and counted."""
        finished = []
        with self._lock:
            try:
                self._handle(event, finished)
            except (KeyError, TypeError, ValueError, AttributeError):
                self.dropped += 1
            else:
                self.events += 1
        if self.on_file_done is not None:
            for path in finished:
                self.on_file_done(path)

    def _handle(self, event: dict, finished: list[str]) -> None:
        # Per-path state is bounded by the files the run has (a cap when that is unknown), so
        # no stream of events can grow it or count past 100 %.
        cap = self.total_files or _PATH_CAP
        kind = event.get("k")
        if kind == CHUNKED:
            path, n, size = event["p"], int(event["n"]), int(event["b"])
            if not isinstance(path, str) or n < 0 or size < 0:
                raise ValueError("malformed")
            if hash(path) in self._finished:
                return
            if path not in self._pending and self.files_done + len(self._pending) >= cap:
                raise ValueError("more files than the run has")
            self.chunks_cut += n
            self.current_file = path
            if n == 0 or self._embedded[path] >= n:
                self._embedded.pop(path, None)
                finished.append(self._finish(path, size))
            else:
                self._pending[path] = (n, size)
        elif kind == EMBEDDED:
            counts = event["p"]
            if not all(isinstance(path, str) and isinstance(n, int) and n >= 0
                       for path, n in counts.items()):
                raise ValueError("malformed")
            for path, n in counts.items():
                if hash(path) in self._finished:
                    continue
                if path not in self._embedded and len(self._embedded) >= cap:
                    self.dropped += 1
                    continue
                self.chunks_embedded += n
                self._embedded[path] += n
                expected = self._pending.get(path)
                if expected and self._embedded[path] >= expected[0]:
                    del self._pending[path]
                    del self._embedded[path]
                    finished.append(self._finish(path, expected[1]))
        elif kind == ASSEMBLED:
            n = int(event["n"])
            if n < 0:
                raise ValueError("malformed")
            self.files_assembled += n
        elif kind == WRITTEN:
            rows = int(event["r"])
            if rows < 0:
                raise ValueError("malformed")
            self.rows_written += rows
        else:
            raise ValueError("unknown kind")

    def _finish(self, path: str, size: int) -> str:
        self._finished.add(hash(path))
        self.files_done += 1
        self.bytes_done += size
        self.current_file = path
        now = self._clock()
        self._window.append((now, self.files_done, self.bytes_done))
        while len(self._window) > 1 and now - self._window[0][0] > RATE_WINDOW_S:
            self._window.popleft()
        return path

    @property
    def files_chunked(self) -> int:
        """Files cut into chunks so far (finished, or waiting for their last vectors)."""
        with self._lock:
            return self.files_done + len(self._pending)

    def rates(self) -> tuple[float, float]:
        """(files/s, KB/s) over the last ~10 s of finished files."""
        with self._lock:
            now = self._clock()
            t0, f0, b0 = self._window[0]
            elapsed = max(now - t0, 1e-6)
            return (self.files_done - f0) / elapsed, (self.bytes_done - b0) / 1024 / elapsed

    def current_stage(self) -> str:
        with self._lock:
            if self.stage != "running":
                return self.stage
            if self.files_done < self.total_files:
                return "chunking+embedding" if self.chunks_cut or self.files_done else "starting Beam"
            return "assembling+writing"

    def waiting_for_events(self) -> bool:
        """The run has been going a while and no progress event has arrived."""
        with self._lock:
            return (self.events == 0 and self.running_since is not None
                    and self.stage == "running"
                    and self._clock() - self.running_since >= NO_EVENTS_NOTE_S)

    def summary_line(self) -> str:
        stage = self.current_stage()
        if self.waiting_for_events():
            return (f"[{stage}] {self._clock() - self.started:.0f}s | per-file progress "
                    f"unavailable: no events from the workers yet | {self.total_files} files "
                    "to process")
        fps, kbps = self.rates()
        total = self.total_files
        pct = 100.0 * self.files_done / total if total else 100.0
        elapsed = self._clock() - self.started
        return (
            f"[{stage}] {self.files_done}/{total} files ({pct:.0f}%) | {fps:.1f} files/s | "
            f"{kbps:.1f} KB/s | chunks {self.chunks_cut} cut, {self.chunks_embedded} embedded | "
            f"files assembled {self.files_assembled}, rows written {self.rows_written} | "
            f"{elapsed:.0f}s | {self.current_file}"
        )


class _Channel:
    """Launcher end of a progress route: a daemon thread that feeds a tracker; `close()`
    stops it and takes in what was sent last."""

    route = ""

    def __init__(self, tracker: ProgressTracker):
        self.tracker = tracker
        self.dropped = 0  # messages that could not be authenticated or read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"progress-{self.route}",
                                        daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _loop(self) -> None:
        raise NotImplementedError

    def _feed(self, events) -> int:
        """Hand a list of events to the tracker; returns how many it held."""
        if not isinstance(events, list):
            self.dropped += 1
            return 0
        for event in events:
            if not isinstance(event, dict):
                self.tracker.dropped += 1
                continue
            try:
                self.tracker.handle(event)
            except Exception:  # a failing on_file_done callback must not stop the channel
                log.exception("progress callback failed")
        return len(events)

    def _drain(self) -> None:
        """What arrived after the thread stopped."""

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join()
        self._drain()

    def _wake(self) -> None:
        """End the thread's wait at once (routes that wait on `_stop` need nothing)."""


class ProgressChannel(_Channel):
    """UDP datagrams on 127.0.0.1, for the local modes (runners.Placement.local). Any local
    user can send to the port, so a datagram counts only when signed with `key`, this run's
    secret, which reaches the workers inside the pickled RunLink."""

    route = "udp"

    def __init__(self, tracker: ProgressTracker):
        super().__init__(tracker)
        self.key = secrets.token_bytes(MAC_BYTES)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A large receive buffer so bursts (10k tiny files chunked at once) are not dropped.
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.address: tuple[str, int] = self._sock.getsockname()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._drain_one()

    def _wake(self) -> None:
        # An empty datagram ends the thread's wait for one (up to its 0.1 s timeout); it
        # queues behind whatever the workers sent last, which _drain() still reads.
        try:
            self._sock.sendto(b"", self.address)
        except OSError:
            pass

    def _drain_one(self) -> bool:
        try:
            data = self._sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return False
        except OSError:
            self._stop.set()
            return False
        if not data:
            return True
        mac, payload = data[:MAC_BYTES], data[MAC_BYTES:]
        if not hmac.compare_digest(mac, hmac.digest(self.key, payload, MAC_DIGEST)):
            self.dropped += 1
            return True
        try:
            events = json.loads(payload.decode("utf-8", "surrogateescape"))
        except Exception:  # noqa: BLE001 - even a signed message must not stop the channel
            self.dropped += 1
            return True
        self._feed(events)
        return True

    def _drain(self) -> None:
        # Events sent just before the pipeline returned are still in the socket buffer.
        self._sock.setblocking(False)
        while self._drain_one():
            pass
        self._sock.close()


class EventFileChannel(_Channel):
    """Event files in `directory` on OUT's filesystem, for distributed runners
    (event_files.py): listed every `interval` seconds, read once each, then deleted."""

    route = "event files"

    def __init__(self, tracker: ProgressTracker, directory: str,
                 interval: float = event_files.READ_EVERY_S):
        super().__init__(tracker)
        self.directory = directory
        self.interval = interval
        self.events = 0
        self._seen: set[str] = set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> int:
        """Read every new event object once; returns how many events it held."""
        try:
            names = [n for n in storage.list_names(self.directory)
                     if n.endswith(event_files.SUFFIX) and n not in self._seen]
        except Exception as exc:  # noqa: BLE001 - a failed listing is retried next poll
            log.debug("listing %s failed: %s", self.directory, exc)
            return 0
        count, done = 0, []
        for name in sorted(names):
            path = storage.join(self.directory, name)
            try:
                events = json.loads(storage.read_bytes(path).decode("utf-8", "surrogateescape"))
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - a malformed or unreadable object
                log.debug("progress events in %s dropped: %s", path, exc)
                events = []
            self._seen.add(name)
            done.append(path)
            count += self._feed(events)
        self.events += count
        try:
            storage.delete_files(done)
        except Exception as exc:  # noqa: BLE001 - what stays is deleted with the staging
            log.debug("consumed event objects not deleted: %s", exc)
        return count

    def _drain(self) -> None:
        self.poll()  # what the workers wrote last


class ProgressDisplay:
    """Renders the tracker on a stream: bars on a terminal (rich), a log line otherwise.

    On a terminal: one bar per stage (files discovered, chunked, embedded; rows committed),
    with counts, files/s and the time left, and a line with the stage and the current file,
    redrawn twice a second. Elsewhere (cron, a pipe): a plain line every 10 s, so a log never
    stays silent while work goes on.
    """

    def __init__(self, tracker: ProgressTracker, stream: TextIO | None = None,
                 interval: float | None = None):
        self.tracker = tracker
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if interval is not None else (0.5 if self.tty else 10.0)
        self._bars = _StageBars(tracker, self.stream) if self.tty else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress-display", daemon=True)

    def __enter__(self) -> Self:
        if self._bars is not None:
            self._bars.start()
        self.render()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.render()
        if self._bars is not None:
            self._bars.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.render()

    def render(self) -> None:
        try:
            if self._bars is not None:
                self._bars.update()
            else:  # it names a path from the tree: no raw control character reaches a log
                line = printable(self.tracker.summary_line())
                self.stream.write(time.strftime("%H:%M:%S ") + line + "\n")
                self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not stop indexing


class _StageBars:
    """The terminal's view: rich's Progress with a task per stage and a status line below."""

    def __init__(self, tracker: ProgressTracker, stream: TextIO):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        self.tracker = tracker
        # The stage and the current file, under the bars; a path is shown with its control
        # characters escaped (printable), never interpreted.
        status = self._status = Text("", no_wrap=True, overflow="ellipsis")

        class WithStatus(Progress):
            def get_renderables(self):
                yield self.make_tasks_table(self.tasks)
                yield status

        self.progress = WithStatus(
            TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(elapsed_when_finished=True),
            console=Console(file=stream, force_terminal=True, highlight=False),
            # What the run prints to stderr meanwhile (the plan line) goes above the bars.
            refresh_per_second=4, redirect_stdout=False, redirect_stderr=stream is sys.stderr)
        self.discovered = self.progress.add_task("discovered", total=None, rate="")
        self.chunked = self.progress.add_task("chunked", total=None, rate="")
        self.embedded = self.progress.add_task("embedded", total=None, rate="")
        self.committed = self.progress.add_task("committed", total=None, rate="")

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def update(self) -> None:
        t = self.tracker
        stage = t.current_stage()
        total = t.total_files
        discovering = stage == "discovering"
        # While the walk goes on, the number found grows and nothing else has a total.
        self.progress.update(self.discovered, completed=total,
                             total=None if discovering else total)
        known = None if discovering else total
        fps, _ = t.rates()
        self.progress.update(self.chunked, completed=t.files_chunked, total=known)
        self.progress.update(self.embedded, completed=t.files_done, total=known,
                             rate=f"{fps:.0f} files/s")
        # Rows are committed when every cut chunk is written; until the cutting ends the
        # number of rows to come is not known.
        cut_all = known is not None and t.files_chunked >= known
        rows = t.rows_written
        self.progress.update(self.committed, completed=rows,
                             total=t.chunks_cut if cut_all else None)
        note = " | no events from the workers yet" if t.waiting_for_events() else ""
        self._status.plain = printable(
            f"[{stage}] chunks {t.chunks_cut} cut, {t.chunks_embedded} embedded | "
            f"{rows} rows written{note} | {t.current_file}")


__getattr__ = _moved.names("beam_pipeline.progress", {name: "runtime.link" for name in (
    "FLUSH_EVENTS", "FLUSH_S", "RunLink")})
