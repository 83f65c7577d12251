"""The lexical index fed by the chunker (lexical/feed.py) holds exactly the committed rows: what was
sent but not committed is dropped, a file sent twice keeps one copy, a committed file that never
arrived comes from its shard."""

import pickle
import threading

import numpy as np
import pytest
from conftest import code_file, make_tree

from beam_pipeline import lexical, run_index
from beam_pipeline.chunking import Chunk
from beam_pipeline.layout.records import FileRecord
from beam_pipeline.layout.schema import chunk_id
from beam_pipeline.lexical import feed as lexfeed
from beam_pipeline.lexical.feed import FeedLink, LexicalFeed
from beam_pipeline.run.flags import SMALL_RUN_FILES
from beam_pipeline.store.rows import build_rows, write_shard
from beam_pipeline.store.verify import verify_index

DIM = 4


def shard_of(directory, files: dict[str, tuple[str, list[str]]]) -> tuple[str, str]:
    """A staged shard holding `files` (path → (content hash, chunk texts)); (path, name)."""
    batches = []
    for path, (digest, texts) in files.items():
        chunks = [Chunk(i, 0, len(t), 1, 1, t) for i, t in enumerate(texts)]
        record = FileRecord(path, 10, 0, digest, len(chunks))
        batches.append(build_rows(record, chunks, np.ones((len(chunks), DIM), np.float32), DIM))
    name = write_shard(batches, str(directory), DIM)["path"]
    return str(directory / name), name


def ids(path: str, digest: str, count: int) -> set[str]:
    return {chunk_id(path, digest, i) for i in range(count)}


def test_the_fed_index_is_reconciled_with_what_was_committed(tmp_path):
    feed = LexicalFeed(base=None, deleted=())
    try:
        link = pickle.loads(pickle.dumps(feed.link))  # as a DoFn carries it to its worker
        link.setup()
        link.send("a.py", "ha", [(0, "def alpha(): pass"), (1, "alpha_two = 2")])
        link.send("failed.py", "hf", [(0, "def never_committed(): pass")])
        link.send("retried.py", "hr", [(0, "def retried(): pass")])
        link.flush()
        link.send("retried.py", "hr", [(0, "def retried(): pass")])  # a retried bundle's
        link.send("changed.py", "old", [(0, "def before(): pass")])  # changed during the run
        link.close()
        own = shard_of(tmp_path, {"a.py": ("ha", ["def alpha(): pass", "alpha_two = 2"]),
                                  "retried.py": ("hr", ["def retried(): pass"]),
                                  "changed.py": ("new", ["def after(): pass"]),
                                  "unsent.py": ("hu", ["def unsent(): pass"] * 3)})
        stale = shard_of(tmp_path, {"stale.py": ("hs", ["def previous(): pass"])})
        committed = {"a.py": "ha", "retried.py": "hr", "changed.py": "new", "unsent.py": "hu"}
        folder, docs = feed.finish(committed, [own], [stale])
        entry = lexical.export(folder, docs, str(tmp_path / "snapshot"))
    finally:
        feed.close()

    index = lexical.LexicalIndex.open(str(tmp_path / "snapshot"), entry)
    found = index.all_ids()
    expected = (ids("a.py", "ha", 2) | ids("retried.py", "hr", 1) | ids("changed.py", "new", 1)
                | ids("unsent.py", "hu", 3) | ids("stale.py", "hs", 1))
    assert sorted(found) == sorted(expected)  # no duplicate, nothing uncommitted
    assert docs == len(expected)
    assert [hit for hit, _ in index.search("never_committed", 5)] == []
    assert [hit for hit, _ in index.search("alpha", 5)]  # fed documents are searchable


def test_a_worker_that_cannot_reach_the_feed_sends_nothing_and_fails_nothing(tmp_path):
    link = FeedLink(str(tmp_path / "no-such-socket"), b"key")
    link.setup()
    link.send("a.py", "ha", [(0, "text")])
    link.flush()
    link.close()


def test_a_feed_that_falls_behind_leaves_the_index_to_the_shards(tmp_path, monkeypatch, caplog):
    """The helper indexes on idle time only; on a machine others keep busy the launcher stops
    waiting for it and builds the index from the shards: the snapshot is the same."""
    # Enough files for the feed (a smaller run follows the shards from the start).
    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 10)
                                       for i in range(SMALL_RUN_FILES)})
    monkeypatch.setattr(lexfeed, "GRACE_S", 0.0)
    monkeypatch.setattr(lexfeed, "GRACE_SHARE", 0.0)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where the helper keeps its index
    with caplog.at_level("WARNING"):
        stats = run_index(src, tmp_path / "index")
    assert stats.committed and stats.files_processed == SMALL_RUN_FILES
    assert any("built from the shards instead" in r.getMessage() for r in caplog.records)
    assert verify_index(tmp_path / "index") == []
    assert not list(scratch.glob("beam-index-lexical-*"))  # the stopped helper's folder too


def test_a_helper_that_reads_nothing_never_makes_the_chunker_wait(tmp_path):
    """The helper runs on idle CPU: when it stops reading, a worker gives up feeding it (its
    files then come from the shards) instead of waiting."""
    from multiprocessing.connection import Listener

    listener = Listener(family="AF_UNIX", authkey=b"key")
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    link = FeedLink(listener.address, b"key")

    def chunk_many_files():
        link.setup()
        for i in range(200):  # 200 MB of text: far more than a socket and the outbox hold
            link.send(f"f{i}.py", "h", [(0, "x" * (1 << 20))])
        link.flush(wait_s=0.1)
        link.close()

    worker = threading.Thread(target=chunk_many_files, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    listener.close()


def test_a_connection_accepted_after_the_stop_began_is_still_read(tmp_path):
    """The helper runs at the lowest priority: its accepting thread may take a worker's
    connection only after the worker has sent everything and the commit has begun."""
    import socket
    from multiprocessing.connection import Connection, answer_challenge, deliver_challenge

    from beam_pipeline.lexical.feed import _Inbox

    gate = threading.Event()

    class SlowInbox(_Inbox):
        def _next_connection(self):
            gate.wait()  # descheduled until the stop has begun
            return super()._next_connection()

    with lexical.LexicalBuilder() as builder:
        inbox = SlowInbox(builder)
        raw = socket.socket(socket.AF_UNIX)
        raw.connect(inbox.address)  # queued before the stop's own connection
        conn = Connection(raw.detach())

        def worker():  # what Client() and FeedLink do once connected
            answer_challenge(conn, inbox.authkey)
            deliver_challenge(conn, inbox.authkey)
            conn.send([("late.py", "hl", [(0, "def late(): pass")])])
            conn.close()

        sender = threading.Thread(target=worker)
        sender.start()
        stopping = threading.Thread(target=inbox.stop)
        stopping.start()
        inbox._stopping.wait(10)
        gate.set()
        sender.join(30)
        stopping.join(30)
        assert not stopping.is_alive()
        assert inbox.sent == {"late.py": "hl"}


def test_a_helper_that_dies_says_so_at_the_commit():
    """The launcher then builds the index from the shards (as for one that falls behind)."""
    feed = LexicalFeed(base=None, deleted=())
    try:
        feed.link  # noqa: B018 - started and listening
        feed._process.kill()
        feed._process.wait()
        with pytest.raises(lexical.LexicalError, match="died"):
            feed.finish({}, [], [], timeout=30)
    finally:
        feed.close()
