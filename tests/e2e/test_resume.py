"""The resume journal: a killed, cancelled or failed run's vectors are not paid for twice.

The kill is real (SIGKILL at a share of the chunks embedded, through the CLI against a fake
embeddings server on 127.0.0.1); the next run must embed only what nobody embedded yet, and
its index must equal one built without interruption.
"""

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import BEAM_INDEX, code_file, make_tree, run_cli

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.embedding import journal
from beam_pipeline.layout.schema import CURRENT_FILE, JOURNAL_DIR
from beam_pipeline.run.progress import ProgressTracker
from beam_pipeline.runtime.cancel import CancelToken
from beam_pipeline.search import Index
from beam_pipeline.store.verify import verify_index
from beam_pipeline.testing.fake_embeddings import FakeEmbeddingServer

DIM = 32
HASHING_DIM = 384  # the hashing embedder's default


def _tree(root):
    return make_tree(root, {f"pkg/m{i:02d}.py": code_file(f"m{i}", 30) for i in range(30)})


def _index_args(src, out, server, *extra):
    return ["index", src, "--output", out, "--quiet", "--embedder", "openai",
            "--embedding-url", server.url, "--embedding-model", "fake", "--embedding-dim",
            str(DIM), "--chunk-size", "300", "--batch-size", "4", *extra]


def _journaled(out, dim: int = DIM) -> int:
    root = out / JOURNAL_DIR
    folders = list(root.iterdir()) if root.is_dir() else []
    return sum(len(keys) // journal.KEY_BYTES for folder in folders
               for keys, _ in journal.read_blocks(str(folder), dim))


def _rows(out):
    idx = Index.open(out)
    table = pq.read_table([str(idx.shard_path(s)) for s in idx.shards]).sort_by("id")
    return table["id"].to_pylist(), np.array(table["vector"].to_pylist(), np.float32)


@pytest.mark.slow
def test_a_run_killed_at_60_percent_is_resumed_from_its_journal(tmp_path):
    src = _tree(tmp_path / "src")
    out, clean = tmp_path / "out", tmp_path / "clean"
    with FakeEmbeddingServer(DIM) as server:
        server.latency = 0.01  # the kill lands mid-run, not after the last batch
        dry = run_cli(*_index_args(src, out, server, "--dry-run", "--stats-json",
                                   tmp_path / "dry.json"))
        assert dry.returncode == 0, dry.stderr
        total = json.loads((tmp_path / "dry.json").read_text())["chunks_to_embed"]
        assert total >= 100

        killed = subprocess.run(
            [*BEAM_INDEX, *map(str, _index_args(src, out, server))],
            env={**os.environ, "BEAM_INDEX_FAULT": "embedded:0.6"}, capture_output=True,
            text=True, timeout=300, check=False)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert not (out / CURRENT_FILE).exists(), "nothing of the killed run is visible"
        journaled = _journaled(out)
        assert 0.6 * total <= journaled < total, (journaled, total)

        server.requests.clear()
        resumed = run_cli(*_index_args(src, out, server, "--stats-json",
                                       tmp_path / "resumed.json"))
        assert resumed.returncode == 0, resumed.stderr
        assert "Resuming:" in resumed.stderr
        stats = json.loads((tmp_path / "resumed.json").read_text())
        assert stats["journal_vectors"] == journaled
        assert stats["chunks_embedded"] <= 0.45 * total
        assert stats["chunks_embedded"] == total - journaled
        assert stats["chunks_reused"] == journaled
        # The probe, then only texts nobody had embedded.
        assert sum(len(r["inputs"]) for r in server.requests) == total - journaled + 1
        assert not (out / JOURNAL_DIR).exists(), "a commit absorbs the journal"

        done = run_cli(*_index_args(src, clean, server))
        assert done.returncode == 0, done.stderr
    assert verify_index(out, src) == []
    ids, vectors = _rows(out)
    clean_ids, clean_vectors = _rows(clean)
    assert ids == clean_ids
    np.testing.assert_array_equal(vectors, clean_vectors)


def _cancel_after_first_file(mode: str, out, src, **request):
    cancel = CancelToken()
    tracker = ProgressTracker(on_file_done=lambda path: cancel.cancel())
    settings = IndexSettings.create("hashing", chunk_size=300, batch_size=4,
                                    embed_processes=0)
    return run_index(src, out, settings, cancel=cancel, tracker=tracker, journal=mode,
                     **request)


def test_a_cancelled_run_leaves_its_journal_and_the_next_run_reuses_it(tmp_path):
    src, out = _tree(tmp_path / "src"), tmp_path / "out"
    stopped = _cancel_after_first_file("always", out, src)
    assert stopped.cancelled and not stopped.committed
    journaled = _journaled(out, HASHING_DIM)
    assert journaled > 0
    again = run_index(src, out, IndexSettings.create("hashing", chunk_size=300, batch_size=4),
                      journal="always")
    assert again.committed and again.journal_vectors == journaled
    assert again.chunks_reused == journaled
    assert again.chunks_embedded + again.chunks_reused == again.chunks_created
    assert not (out / JOURNAL_DIR).exists()


def test_hashing_keeps_no_journal_unless_asked(tmp_path):
    src, out = _tree(tmp_path / "src"), tmp_path / "out"
    stopped = _cancel_after_first_file("auto", out, src)
    assert stopped.cancelled
    assert not (out / JOURNAL_DIR).exists()


def test_a_journal_of_another_fingerprint_is_never_reused(tmp_path):
    src, out = _tree(tmp_path / "src"), tmp_path / "out"
    _cancel_after_first_file("always", out, src)
    assert _journaled(out, HASHING_DIM) > 0
    other = run_index(src, out, IndexSettings.create("hashing", chunk_size=400, batch_size=4),
                      journal="always")
    assert other.committed and other.journal_vectors == 0 and other.chunks_reused == 0


def _write_blocks(folder, blocks, **spec):
    writer = journal.JournalWriter(journal.JournalSpec(str(folder), **spec))
    for keys, rows in blocks:
        writer.append(keys, rows, DIM)
    writer.close()
    return writer


def _block(seed: int, count: int = 3):
    rng = np.random.default_rng(seed)
    keys = b"".join(journal.text_key(f"chunk {seed} {i}") for i in range(count))
    return keys, rng.standard_normal((count, DIM)).astype(np.float32).tobytes()


def test_a_torn_or_damaged_block_ends_its_segment_and_keeps_the_blocks_before(tmp_path):
    blocks = [_block(seed) for seed in range(3)]
    _write_blocks(tmp_path, blocks)
    (segment, size), = journal.segments(str(tmp_path))
    assert list(journal.read_blocks(str(tmp_path), DIM)) == blocks
    with open(segment, "r+b") as fh:
        fh.truncate(size - 5)  # the process died while writing the last block
    assert list(journal.read_blocks(str(tmp_path), DIM)) == blocks[:2]
    data = bytearray(Path(segment).read_bytes())
    data[len(journal.encode_block(*blocks[0], DIM)) + 30] ^= 0xFF  # a bit flipped in block 2
    Path(segment).write_bytes(bytes(data))
    assert list(journal.read_blocks(str(tmp_path), DIM)) == blocks[:1]
    assert list(journal.read_blocks(str(tmp_path), DIM + 1)) == [], "another dimension"


def test_the_cap_drops_the_oldest_segments_first(tmp_path):
    block_bytes = len(journal.encode_block(*_block(0), DIM))
    for seed in range(4):
        _write_blocks(tmp_path, [_block(seed)])
    names = [path for path, _ in journal.segments(str(tmp_path))]
    dropped = journal.trim(str(tmp_path), 2 * block_bytes)
    assert dropped == names[:2]
    assert [k for k, _ in journal.read_blocks(str(tmp_path), DIM)] == [
        _block(2)[0], _block(3)[0]]
    # A writer stops at the cap too: a block that would pass it is not written.
    writer = _write_blocks(tmp_path / "capped", [_block(5), _block(6)],
                           max_bytes=block_bytes + 1)
    assert writer.bytes_written == block_bytes
    assert len(list(journal.read_blocks(str(tmp_path / "capped"), DIM))) == 1


def test_on_an_object_store_each_flush_is_a_new_object(s3):
    s3.bucket("journal")
    from beam_pipeline.source import storage

    storage.use_options(s3.flags)
    folder = "s3://journal/out/.journal/abc"
    blocks = [_block(seed) for seed in range(3)]
    writer = journal.JournalWriter(journal.JournalSpec(folder))
    writer.append(*blocks[0], DIM)
    writer.flush()  # a bundle's end
    writer.append(*blocks[1], DIM)
    writer.append(*blocks[2], DIM)
    writer.close()
    assert len(journal.segments(folder)) == 2
    assert list(journal.read_blocks(folder, DIM)) == blocks
    journal.clear("s3://journal/out")
    assert journal.segments(folder) == []
