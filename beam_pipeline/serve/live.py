"""LiveIndex: the snapshot an output folder's CURRENT names, open and warm, for a resident
server.

A thread reads CURRENT every `poll_s` (a read of a few bytes); when a commit moves it, the
new snapshot is opened and warmed (its vectors, lexical index and embedder loaded by one
search) before it replaces the old one. A query holds the Index it started with, so a query
in flight when the snapshot changes finishes on its snapshot, whose files the commit's prune
grace keeps for it; the next query gets the new one. An output with no index yet is served
as such (no snapshot) until its first commit.

Example::

    live = LiveIndex("index").start()
    hits = live.index.search("retry a failed upload", k=5)
    live.stop()
"""

from __future__ import annotations

import logging
import threading

from ..errors import IndexReadError
from ..search import Index, SearchRequest
from ..search.reader import RowGroupCache
from ..store.commit import read_current

log = logging.getLogger(__name__)

POLL_S = 0.2  # how soon a commit is served: a local CURRENT's read costs microseconds
_WARM_QUERY = "warm up the index"
_ATTEMPTS = 3
# Decoded text of the shards' row groups kept for snippets and read_lines: a warm query
# decodes none it has read before (291k rows: about all of their text).
ROW_CACHE_BYTES = 256 << 20


class NoIndex(IndexReadError):
    """Nothing to answer from: no commit yet, or snapshots pruned faster than a query runs."""


class LiveIndex:
    """The live snapshot of `out`, replaced when CURRENT moves.

    Args:
      out: the index folder (or URL).
      embedder_options: where a remote embedder sends queries (as for `Index.open`).
      poll_s: how often CURRENT is read.
    """

    def __init__(self, out: str, embedder_options: dict | None = None, poll_s: float = POLL_S):
        self.out = out
        self.embedder_options = dict(embedder_options or {})
        self.poll_s = poll_s
        self._index: Index | None = None
        self._loading = threading.Lock()  # one load at a time: the poll's or a query's
        # One query at a time. A query is a scan of every vector (BLAS on every core) and
        # Python under the GIL; run side by side they only fight over memory bandwidth: 50
        # clients at once on 291k rows made 3.4 searches/s and timed out, where one at a time
        # makes what one query takes (2026-12-08, benchmarks/serve_latency.py).
        self._querying = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None  # why the snapshot CURRENT names could not be opened
        self.refresh()

    @property
    def index(self) -> Index | None:
        """The snapshot to answer from now; None before the first commit."""
        return self._index

    def current(self) -> Index:
        """The snapshot to answer from now; NoIndex before the first commit."""
        index = self._index
        if index is None:
            raise NoIndex(f"{self.out} holds no index yet"
                          + (f" ({self.error})" if self.error else ""))
        return index

    def answer(self, asked: SearchRequest) -> tuple[list[dict], str]:
        """The hits, and the snapshot that answered: the one served when the query starts,
        whatever CURRENT does meanwhile. Only a snapshot pruned under the query (a prune
        grace shorter than a query) sends it to the one CURRENT names now."""
        for _ in range(_ATTEMPTS):
            index = self.current()
            try:
                with self._querying:
                    return index.answer(asked), index.snapshot_id
            except (FileNotFoundError, IndexReadError):
                asked.notes.clear()
                if not self.refresh() and self._index is index:
                    raise
        raise NoIndex(f"{self.out}: its snapshots were pruned faster than a query ran")

    def refresh(self) -> bool:
        """Open and warm the snapshot CURRENT names, if it is not the one served; whether
        the served one changed. A snapshot that cannot be opened leaves the old one served."""
        with self._loading:
            return self._refresh()

    def _refresh(self) -> bool:
        try:
            live = read_current(self.out)
        except OSError as exc:
            self.error = f"{self.out}: CURRENT unreadable ({exc})"
            return False
        served = self._index
        if live is None or (served is not None and served.snapshot_id == live):
            return False
        try:
            index = Index.open(self.out, embedder_options=self.embedder_options)
            index.row_cache = RowGroupCache(ROW_CACHE_BYTES)
            index.search(_WARM_QUERY, k=1)
        except Exception as exc:  # noqa: BLE001 - recorded, shown by /health; the old one serves on
            self.error = f"snapshot {live}: {exc}"
            log.warning("serving %s still: %s", served.snapshot_id if served else "nothing",
                        self.error)
            return False
        self._index, self.error = index, None
        log.info("serving snapshot %s", index.snapshot_id)
        return True

    def start(self) -> LiveIndex:
        self._thread = threading.Thread(target=self._follow, name="live-index", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception:  # a bad snapshot must not end the server
                log.exception("following %s failed; serving the last snapshot", self.out)
