"""LexicalFeed: the new snapshot's lexical index, built while the files are still being chunked
(the local modes, with OUT on a local disk).

ShardFollower (build.py) indexes rows as their shards appear, after the per-file grouping:
on two cores that was the last ~0.8 s of a standard-library run, tantivy tokenising 1.4 s of
CPU beside assembly and shard writing. While files are chunked one core is not busy all the
time (the chunker's thread uses one, the embedding helper part of the other). So ChunkFile
sends each chunked file's texts (`FeedLink`) to a helper process of the launcher, which indexes
them at the lowest CPU priority: on time that would otherwise be idle, and without the GIL of
the process that chunks.

What the index holds is decided at the commit, not when a text arrives. `finish` gets the files
this run committed (path → content hash), this run's shards and the shards to take whole (rows
carried forward that the base index lacks, stale files' previous rows):
- documents of a file that was sent but not committed (it failed, or changed during the run)
  are deleted;
- a file sent twice (a retried bundle) keeps only its last copy;
- a committed file that never arrived (a worker that could not connect, a connection that
  broke) is added from its shard, as ShardFollower would.

Example::

    feed = LexicalFeed(base=None, deleted=())
    link = feed.link                      # pickled into ChunkFile
    ...                                   # the pipeline runs
    folder, docs = feed.finish({"a.py": digest}, [(staging + "/part-1.parquet", "part-1.parquet")], [])
    entry = export(folder, docs, staging)
    feed.close()
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Client, Connection, Listener

from ..embedding.calls import start_helper
from ..errors import RunError
from .build import LexicalBuilder
from .fields import LexicalError

log = logging.getLogger(__name__)

# A worker sends a bundle's files in messages of about this much text: one pickling and one
# socket write per ~100 files of code, not per file.
_MESSAGE_CHARS = 1 << 20
# How long `finish` waits for the helper: it indexes on idle time only, so on a machine that
# others keep busy it can fall far behind; the launcher then builds the index from the shards
# itself, as for a distributed runner. On an idle machine it answers within ~0.3 s of a 6 s run.
GRACE_S = 2.0
GRACE_SHARE = 0.25  # … plus this share of the pipeline's own time
# Messages a worker holds for the helper before it stops feeding it (the chunker never waits).
_QUEUED_MESSAGES = 16
# How long a bundle's end waits for its messages to leave.
FLUSH_WAIT_S = 2.0
_STOP = "stop"  # stop()'s message to its own listener
SOCKET_PREFIX = "beam-index-feed-"  # the helper's private folder for its socket
# Messages received but not yet indexed; beyond them the helper stops reading and senders wait
# (at most this many times _MESSAGE_CHARS of text is held).
_INBOX_MESSAGES = 64


class FeedBehind(RunError):
    """The helper did not finish in time (see GRACE_S)."""


def finish_timeout(pipeline_s: float) -> float:
    return GRACE_S + GRACE_SHARE * pipeline_s


class FeedLink:
    """ChunkFile's end: sends `(path, content hash, [(index, text), …])` per chunked file.

    Pickled into the DoFn (the helper's socket address and key). Never makes the chunker wait:
    messages go out on a thread, and when the helper is so far behind that _QUEUED_MESSAGES
    wait here, this worker stops feeding it. A worker that cannot reach the helper, or stopped
    feeding it, sends nothing more: those files' documents come from their shards at the commit.
    """

    def __init__(self, address: str, authkey: bytes):
        self.address = address
        self.authkey = authkey
        self._conn: Connection | None = None
        self._pending: list = []
        self._chars = 0
        self._outbox: queue.Queue = queue.Queue(_QUEUED_MESSAGES)

    def __getstate__(self) -> dict:
        return {"address": self.address, "authkey": self.authkey}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["address"], state["authkey"])

    def setup(self) -> None:
        try:
            self._conn = Client(self.address, family="AF_UNIX", authkey=self.authkey)
        except OSError as exc:
            log.warning("lexical feed unreachable (%s): the lexical index is built from the "
                        "shards", exc)
            return
        threading.Thread(target=self._send_all, args=(self._conn,), daemon=True,
                         name="lexical-feed").start()

    def _send_all(self, conn: Connection) -> None:
        try:
            while (message := self._outbox.get()) is not None:
                if isinstance(message, threading.Event):
                    message.set()  # flush(): everything before it is sent
                else:
                    conn.send(message)
        except OSError:
            pass  # the helper is gone or the link closed: the shards have every row
        finally:
            conn.close()

    def send(self, path: str, digest: str, chunks: Sequence[tuple[int, str]]) -> None:
        if self._conn is None:
            return
        self._pending.append((path, digest, chunks))
        self._chars += sum(len(text) for _, text in chunks)
        if self._chars >= _MESSAGE_CHARS:
            self.flush(wait_s=0)

    def flush(self, wait_s: float = FLUSH_WAIT_S) -> None:
        """Hand over what is pending and wait (at most `wait_s`) until it is sent: a bundle's
        end, after which the commit may read what arrived."""
        pending, self._pending, self._chars = self._pending, [], 0
        if self._conn is None:
            return
        sent = threading.Event() if wait_s > 0 else None
        for message in [m for m in (pending, sent) if m]:
            try:
                self._outbox.put_nowait(message)
            except queue.Full:
                self._stop()
                return
        if sent is not None and not sent.wait(wait_s):
            self._stop()  # a runner with many small bundles would wait at each one

    def _stop(self) -> None:
        log.warning("lexical feed behind: this worker's other files are indexed from the "
                    "shards")
        self._conn = None  # the sender thread closes it once it sees the end marker
        while True:  # room for the end marker
            try:
                self._outbox.get_nowait()
            except queue.Empty:
                break
        self._outbox.put(None)

    def close(self) -> None:
        if self._conn is not None:
            self.flush()
        if self._conn is not None:
            self._conn = None
            self._outbox.put(None)  # after everything flushed: the sender ends and closes


class LexicalFeed:
    """The launcher's end: the helper process that builds the index, and its `link`.

    `base` is the previous snapshot's folder and lexical entry (its index is updated, as
    LexicalBuilder does), `deleted` the files whose documents go before anything is added.
    """

    def __init__(self, base: tuple[str, dict] | None, deleted: Iterable[str]):
        self._folder: str | None = None
        self._link: FeedLink | None = None
        self._process, self._requests, self._answers = start_helper(__name__)
        try:
            self._requests.send((base, sorted(deleted)))
        except BaseException:
            self.close()
            raise

    @property
    def link(self) -> FeedLink:
        """The workers' end, once the helper listens: its start-up (an interpreter, tantivy,
        a copy of the base index) overlaps whatever the launcher does in between."""
        if self._link is None:
            address, authkey, self._folder = self._answer()
            self._link = FeedLink(address, authkey)
        return self._link

    def finish(self, committed: dict[str, str], run_shards: Sequence[tuple[str, str]],
               whole_shards: Sequence[tuple[str, str]],
               timeout: float | None = None) -> tuple[str, int]:
        """Reconcile with what the run committed (see the module's doc) and commit; the
        index's local folder and its document count. Call close() once the folder is copied.

        `run_shards` and `whole_shards` are (shard path, shard name) pairs. Raises FeedBehind
        when the helper has not answered within `timeout` seconds."""
        self.link  # noqa: B018 - its start-up answer comes first
        try:
            self._requests.send((committed, list(run_shards), list(whole_shards)))
        except OSError:
            raise LexicalError("the lexical index's helper process died") from None
        if timeout is not None and not self._answers.poll(timeout):
            raise FeedBehind(f"the lexical index's helper was not done after {timeout:.1f} s")
        return self._answer()

    def _answer(self):
        try:
            status, value = self._answers.recv()
        except (EOFError, OSError):
            raise LexicalError("the lexical index's helper process died") from None
        if status != "ok":
            raise LexicalError(f"lexical index: {value}")
        return value

    def close(self, timeout: float = 10) -> None:
        """Stop the helper (killed after `timeout` seconds); its folder goes with it."""
        for conn in (self._requests, self._answers):
            conn.close()
        try:
            self._process.wait(timeout=timeout)
        except Exception:  # noqa: BLE001 - a helper that does not stop is killed
            self._process.kill()
            self._process.wait()
        if self._folder is not None:  # gone already, unless the helper was killed
            shutil.rmtree(self._folder, ignore_errors=True)
        if self._link is not None:  # so is the socket's folder
            shutil.rmtree(os.path.dirname(self._link.address), ignore_errors=True)


class _Inbox:
    """The helper's listener: one reader thread per worker connection, and one thread that
    indexes what they receive, in order per connection."""

    def __init__(self, builder: LexicalBuilder):
        self.builder = builder
        self.sent: dict[str, str] = {}  # path → content hash of its documents in the index
        self.authkey = secrets.token_bytes(32)
        # A socket in a folder of our own, not multiprocessing's arbitrary address: that
        # makes a pymp-* folder which only an exit handler removes, and the helper leaves by
        # os._exit. The folder is private (0700), and removed by the helper and the launcher.
        self.folder = tempfile.mkdtemp(prefix=SOCKET_PREFIX)
        self._listener = Listener(os.path.join(self.folder, "feed.sock"), family="AF_UNIX",
                                  authkey=self.authkey)
        self.address = self._listener.address
        self._messages: queue.Queue = queue.Queue(_INBOX_MESSAGES)
        self._stopping = threading.Event()
        self._readers: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._indexing = threading.Thread(target=self._index, daemon=True)
        self._accepting.start()
        self._indexing.start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self._next_connection()
            except Exception as exc:  # noqa: BLE001 - a client that failed the key or left
                log.warning("lexical index helper: a worker's connection failed (%s)", exc)
                continue
            if not self._stopping.is_set():
                reader = threading.Thread(target=self._read, args=(conn,), daemon=True)
                self._readers.append(reader)
                reader.start()
            # stop() has begun: a worker's connection accepted late (this thread may have been
            # descheduled while the worker sent and the pipeline ended), read here; or stop()'s
            # own, which ends this thread.
            elif self._read(conn, late=True):
                return

    def _next_connection(self) -> Connection:
        return self._listener.accept()

    def _read(self, conn: Connection, late: bool = False) -> bool:
        """Take in a connection's messages until its end; whether it was stop()'s own."""
        try:
            while True:
                if late:
                    # stop()'s message follows its handshake at once; a worker's are there.
                    if not conn.poll(1.0):
                        return False
                elif self._stopping.is_set():
                    # Every sender has returned (the pipeline is over): what it sent is in the
                    # socket, so reading until nothing is left takes all of it.
                    if not conn.poll(0):
                        return False
                elif not conn.poll(0.1):
                    continue
                message = conn.recv()
                if message == _STOP:
                    return True
                self._messages.put(message)
        except (EOFError, OSError):
            return False  # the worker closed its end (or died): what arrived is kept
        finally:
            conn.close()

    def _index(self) -> None:
        while (message := self._messages.get()) is not None:
            try:
                for path, digest, chunks in message:
                    if path in self.sent:  # a retried bundle's: the last copy stays
                        self.builder.delete_paths([path])
                    self.builder.add_chunks(path, digest, chunks)
                    self.sent[path] = digest
            except Exception as exc:  # noqa: BLE001 - reported by finish()
                self._error = self._error or exc

    def stop(self) -> None:
        """Take in what the workers sent, index it, and stop."""
        self._stopping.set()
        # A connection of our own ends the accepting thread: closing a listening socket does
        # not wake a thread blocked in accept() on Linux. Connections it accepts before this
        # one are read to their end first.
        with Client(self.address, family="AF_UNIX", authkey=self.authkey) as own:
            own.send(_STOP)
        self._accepting.join()
        self._listener.close()
        for reader in self._readers:
            reader.join()
        self._messages.put(None)
        self._indexing.join()
        if self._error is not None:
            raise self._error


def reconcile(builder: LexicalBuilder, sent: dict[str, str], committed: dict[str, str],
              run_shards: Sequence[tuple[str, str]],
              whole_shards: Sequence[tuple[str, str]]) -> None:
    """Make `builder` hold the committed rows: drop files sent but not committed as sent, add
    from their shards the committed files that were not sent."""
    builder.delete_paths(path for path, digest in sent.items() if committed.get(path) != digest)
    missing = {path for path, digest in committed.items() if sent.get(path) != digest}
    if missing:
        for path, name in run_shards:
            builder.add_shard(path, name, only=missing)
    for path, name in whole_shards:
        builder.add_shard(path, name)


def _serve(requests_fd: int, answers_fd: int) -> None:
    # Ctrl-C reaches the whole process group: the launcher handles it and closes the pipes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Idle time only: the chunker's thread and the embedding helpers come first.
    os.nice(19)
    requests = Connection(requests_fd, writable=False)
    answers = Connection(answers_fd, readable=False)
    builder = inbox = None
    try:
        base, deleted = requests.recv()
        builder = LexicalBuilder(base)
        builder.delete_paths(deleted)
        inbox = _Inbox(builder)
        answers.send(("ok", (inbox.address, inbox.authkey, builder.directory)))
        committed, run_shards, whole_shards = requests.recv()
        inbox.stop()
        reconcile(builder, inbox.sent, committed, run_shards, whole_shards)
        answers.send(("ok", (builder.directory, builder.commit())))
        requests.recv()  # EOF: the launcher has copied the folder
    except (EOFError, OSError):
        pass  # the run ended (or failed) without a commit
    except Exception as exc:  # noqa: BLE001 - the launcher raises it
        try:
            answers.send(("error", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
    finally:
        if inbox is not None:
            shutil.rmtree(inbox.folder, ignore_errors=True)
        if builder is not None:
            builder.close()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
    sys.stderr.flush()
    os._exit(0)
