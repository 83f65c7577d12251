"""Scheduled re-indexing: only what changed is embedded, and the result equals a full rebuild."""

import json
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import BEAM_INDEX, PoisonEmbedder, code_file, make_tree, run_cli

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.chunking import chunk_text
from beam_pipeline.layout.schema import (
    CURRENT_FILE,
    MANIFEST_FILE,
    PRUNE_GRACE_S,
    SNAPSHOTS_DIR,
    STAGING_DIR,
)
from beam_pipeline.search import Index
from beam_pipeline.store.lock import LockedError, OutputLock
from beam_pipeline.store.reindex import MERGE_SHARDS, prunable, prune_snapshots
from beam_pipeline.store.verify import verify_index


def live(out):
    snap = out / SNAPSHOTS_DIR / (out / CURRENT_FILE).read_text().strip()
    manifest = json.loads((snap / MANIFEST_FILE).read_text())
    rows = pq.read_table([str(snap / s["path"]) for s in manifest["shards"]]).sort_by("id")
    files = pq.read_table(snap / "files.parquet")
    return manifest, rows, files


def comparable(rows):
    data = rows.drop_columns(["vector"]).to_pydict()
    return data, np.array(rows["vector"].to_pylist(), dtype=np.float32)


def bump(path, text):
    path.write_text(text)
    stat = path.stat()  # a new mtime even on filesystems with coarse timestamps
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def assert_equals_a_full_build(src, fresh, settings, rows, files):
    """A re-indexed snapshot's rows and files table are those of a build from scratch."""
    run_index(src, fresh, settings)
    _, full_rows, full_files = live(fresh)
    data, vectors = comparable(rows)
    full_data, full_vectors = comparable(full_rows)
    assert data == full_data
    np.testing.assert_array_equal(vectors, full_vectors)
    assert files.drop_columns(["mtime_ns"]).equals(full_files.drop_columns(["mtime_ns"]))


def test_add_change_delete_rename_equals_a_full_rebuild(tmp_path):
    src = make_tree(tmp_path / "src", {f"pkg/m{i}.py": code_file(f"m{i}", 10 + i)
                                       for i in range(8)})
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    settings = IndexSettings.create(chunk_size=300, batch_size=16)
    first = run_index(src, out, settings)
    assert first.files_added == 8 and first.chunks_embedded == first.chunks_created
    bump(src / "pkg/m1.py", code_file("changed", 12))
    (src / "pkg/m2.py").unlink()
    (src / "pkg/m3.py").rename(src / "pkg/renamed.py")
    (src / "pkg/new.py").write_text(code_file("new", 5))
    second = run_index(src, out, settings)
    assert (second.files_added, second.files_changed, second.files_unchanged,
            second.files_deleted) == (2, 1, 5, 2)
    assert second.files_processed == 3  # only new, renamed and changed went through the pipeline
    manifest, rows, files = live(out)
    assert manifest["previous_snapshot"] == first.snapshot_id
    assert_equals_a_full_build(src, fresh, settings, rows, files)
    assert "pkg/m2.py" not in set(rows["path"].to_pylist())


def test_one_file_commits_merge_small_shards_and_equal_a_full_rebuild(tmp_path):
    # What a watch does: one file per commit, a new small shard each time. Carrying merges
    # them once MERGE_SHARDS exist, so the count stays bounded; the rows stay a full build's.
    src = make_tree(tmp_path / "src", {f"pkg/m{i}.py": code_file(f"m{i}", 6) for i in range(4)})
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    settings = IndexSettings.create(chunk_size=300, batch_size=16)
    run_index(src, out, settings)
    counts = []
    for step in range(2 * MERGE_SHARDS + 2):
        name = f"pkg/m{step % 4}.py" if step % 3 else f"pkg/new{step}.py"
        bump(src / name, code_file(f"step{step}", 3 + step % 5))
        stats = run_index(src, out, settings, files=[name], prune_grace_s=0)
        assert stats.committed
        manifest, rows, files = live(out)
        counts.append(len(manifest["shards"]))
        assert sum(s["rows"] for s in manifest["shards"]) == rows.num_rows
        assert verify_index(str(out)) == []
    assert max(counts) <= MERGE_SHARDS + 1 < 2 * MERGE_SHARDS + 2, counts
    assert min(counts[MERGE_SHARDS:]) < max(counts), counts  # a merge happened
    for shard in manifest["shards"]:  # whole files, in path and chunk order
        table = pq.read_table(out / SNAPSHOTS_DIR / manifest["snapshot_id"] / shard["path"])
        keys = list(zip(table["path"].to_pylist(), table["chunk_index"].to_pylist()))
        assert keys == sorted(keys) and shard["files"] == len(set(table["path"].to_pylist()))
    assert_equals_a_full_build(src, fresh, settings, rows, files)
    index = Index.open(out)  # m1.py's content of step 13, then of step 17
    assert [hit["path"] for hit in index.search("step17_1", k=3, mode="fts")] == ["pkg/m1.py"]
    assert index.search("step13_1", k=3, mode="fts") == []


def test_nothing_changed_embeds_nothing_and_commits_nothing(tmp_path):
    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 10) for i in range(5)})
    out = tmp_path / "out"
    first = run_index(src, out)
    again = run_index(src, out)
    assert again.up_to_date and not again.committed and again.snapshot_id == first.snapshot_id
    assert again.embed_batches == 0 and again.files_unchanged == 5
    assert len(list((out / SNAPSHOTS_DIR).iterdir())) == 1


def test_failed_re_embedding_keeps_the_previous_rows_and_is_retried(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 20), "b.py": code_file("b", 20)})
    out = tmp_path / "out"
    settings = IndexSettings.create(PoisonEmbedder(), chunk_size=200)
    run_index(src, out, settings)
    _, before, _ = live(out)
    old_a = before.filter(np.array([p == "a.py" for p in before["path"].to_pylist()]))
    bump(src / "a.py", code_file("a", 20) + "# POISON\n")
    bump(src / "b.py", code_file("b2", 20))
    stats = run_index(src, out, settings)
    assert stats.committed and stats.failed_files == 1 and stats.files_processed == 1
    assert stats.stale == [{"path": "a.py", "reason": stats.stale[0]["reason"]}]
    assert "poisoned input" in stats.stale[0]["reason"]
    manifest, rows, files = live(out)
    assert manifest["stale"] == stats.stale and manifest["counts"]["files_stale"] == 1
    kept_a = rows.filter(np.array([p == "a.py" for p in rows["path"].to_pylist()]))
    assert kept_a.sort_by("id").equals(old_a.sort_by("id"))
    status = dict(zip(files["path"].to_pylist(), files["status"].to_pylist()))
    assert status == {"a.py": "stale", "b.py": "indexed"}
    # Next run: the file is still different from what the index holds, so it is retried.
    bump(src / "a.py", code_file("a_fixed", 20))
    retry = run_index(src, out, settings)
    assert retry.files_changed == 1 and retry.files_processed == 1 and retry.stale == []
    _, rows, files = live(out)
    assert set(files["status"].to_pylist()) == {"indexed"}
    assert any("a_fixed" in c for c in rows["content"].to_pylist())


def test_fingerprint_change_and_full_force_a_rebuild(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 30)})
    out = tmp_path / "out"
    run_cli("index", src, "--output", out, "-q", "--embedder", "hashing")
    proc = run_cli("index", src, "--output", out, "-q", "--embedder", "hashing",
                   "--embedding-dim", "128")
    assert proc.returncode == 0, proc.stderr
    assert "Full build, fingerprint changed: embedder.dim 384 → 128" in proc.stderr
    _, rows, _ = live(out)
    assert rows.schema.field("vector").type.list_size == 128
    proc = run_cli("index", src, "--output", out, "-q", "--embedder", "hashing",
                   "--embedding-dim", "128", "--full")
    assert "Full build, --full given: 1 files to index" in proc.stderr
    # A run that names no embedder takes the default (static), and says why all is re-embedded.
    proc = run_cli("index", src, "--output", out, "-q")
    assert proc.returncode == 0, proc.stderr
    assert "Full build, fingerprint changed: embedder" in proc.stderr
    assert "hashing → static" in proc.stderr


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 30), "b.py": code_file("b", 30)})
    out = tmp_path / "out"
    run_cli("index", src, "--output", out, "-q", "--chunk-size", "500")
    bump(src / "b.py", code_file("b", 60))
    before = sorted(p.name for p in (out / SNAPSHOTS_DIR).iterdir())
    proc = run_cli("index", src, "--output", out, "-q", "--chunk-size", "500", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    expected = len(chunk_text((src / "b.py").read_text(), 500))
    assert "0 added, 1 changed, 1 unchanged, 0 deleted" in proc.stderr
    assert f"Dry run: 1 files, {expected} chunks to embed; nothing written" in proc.stderr
    assert sorted(p.name for p in (out / SNAPSHOTS_DIR).iterdir()) == before
    assert not any((out / STAGING_DIR).iterdir())


def test_a_second_run_fails_fast_while_the_first_holds_the_lock(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": "a = 1\n"})
    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out):
        start = time.monotonic()
        proc = run_cli("index", src, "--output", out, "-q")
        assert proc.returncode == 1
        assert "is being indexed by another run (pid" in proc.stderr
        assert time.monotonic() - start < 30
        with pytest.raises(LockedError):
            OutputLock(out).acquire()
    assert not (out / CURRENT_FILE).exists()


def test_a_killed_runs_lock_and_leftovers_are_taken_over(tmp_path):
    src = make_tree(tmp_path / "src", {f"f{i}.py": code_file(f"f{i}", 40) for i in range(400)})
    out = tmp_path / "out"
    proc = subprocess.Popen([*BEAM_INDEX, "index", str(src), "--output",
                             str(out), "-q", "--batch-size", "2"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list((out / STAGING_DIR).glob("*/_todo.jsonl")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert any((out / STAGING_DIR).iterdir()), "the killed run should have left staging behind"
    assert json.loads((out / ".lock").read_text())["pid"] == proc.pid
    again = run_cli("index", src, "--output", out, "-q")
    assert again.returncode == 0, again.stderr
    assert f"Taking over from an unfinished run (pid {proc.pid})" in again.stderr
    assert not any((out / STAGING_DIR).iterdir())
    assert (out / ".lock").read_text() == ""


def test_old_snapshots_are_pruned_once_superseded_for_the_grace(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 10)})
    out = tmp_path / "out"
    ids = [run_index(src, out, full=True, keep=2).snapshot_id for _ in range(4)]
    # Superseded seconds ago: a search that opened one may still be reading it.
    assert sorted(p.name for p in (out / SNAPSHOTS_DIR).iterdir()) == ids
    assert prune_snapshots(str(out), 2, ids[3]) == []
    # Ten minutes on, --keep decides again.
    assert prune_snapshots(str(out), 2, ids[3], now=time.time() + PRUNE_GRACE_S) == ids[:2]
    ids.append(run_index(src, out, full=True, keep=2, prune_grace_s=0).snapshot_id)
    assert sorted(p.name for p in (out / SNAPSHOTS_DIR).iterdir()) == ids[3:]
    assert (out / CURRENT_FILE).read_text().strip() == ids[4]
    with pytest.raises(ValueError, match="--prune-grace"):
        run_index(src, out, prune_grace_s=-1)


def test_prunable_keeps_the_newest_the_live_and_what_readers_may_hold():
    ids = ["s1", "s2", "s3", "s4"]
    committed = {"s1": 0.0, "s2": 100.0, "s3": 700.0, "s4": 1000.0}
    # At 1000 s: s1 was superseded 900 s ago, s2 300 s ago, s3 just now.
    assert prunable(ids, committed, 1, "s4", 600, 1000) == ["s1"]
    assert prunable(ids, committed, 1, "s4", 0, 1000) == ["s1", "s2", "s3"]
    assert prunable(ids, committed, 3, "s4", 0, 1000) == ["s1"]
    assert prunable(ids, committed, 1, "s2", 0, 1000) == ["s1", "s3"]  # never the live one
    # A folder without a manifest (a run killed on an object store) was never read: it goes
    # at once, and s2's successor is s4, committed just now.
    assert prunable(ids, {**committed, "s3": None}, 1, "s4", 600, 1000) == ["s1", "s3"]


def test_searches_during_re_indexes_with_keep_1_never_fail(tmp_path):
    """A grace of 2 s (600 by default) outlasts any one search here, and runs a second apart
    still prune: readers keep opening snapshots that are pruned soon after. (With no grace, a
    reader that follows CURRENT can lose twice in a row; the next test covers the retry.)"""
    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 20) for i in range(6)})
    out = tmp_path / "out"
    run_index(src, out, keep=1)
    failures, answered, pruned, stop = [], [], [], threading.Event()

    def searches():
        while not stop.is_set():
            try:
                index = Index.open(out)
                time.sleep(0.02)  # opened, not yet read: where a prune used to cut in
                answered.append(index.search("m3_2", 3)[0]["path"])
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                failures.append(repr(exc))

    reader = threading.Thread(target=searches)
    reader.start()
    try:
        for n in range(6):
            (src / "m0.py").write_text(code_file(f"edit{n}", 20))
            pruned += run_index(src, out, keep=1, prune_grace_s=2.0).pruned
    finally:
        stop.set()
        reader.join()
    assert failures == [] and len(answered) > 20 and set(answered) == {"m3.py"}
    assert pruned, "no snapshot was pruned while searches ran"
    assert verify_index(out) == []


def test_a_long_lived_reader_follows_current_when_its_snapshot_is_pruned(tmp_path):
    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 20) for i in range(4)})
    out = tmp_path / "out"
    run_index(src, out)
    index = Index.open(out)
    first = index.snapshot_id
    assert index.search("m1_3", 1)[0]["path"] == "m1.py"  # vectors and lexicon loaded
    (src / "m1.py").unlink()
    (src / "fresh.py").write_text(code_file("fresh", 20))
    live = run_index(src, out, keep=1, prune_grace_s=0).snapshot_id
    assert not (out / SNAPSHOTS_DIR / first).exists()
    hits = index.search("fresh_3", 3)
    assert index.snapshot_id == live and hits[0]["path"] == "fresh.py"
    assert all(hit["path"] != "m1.py" for hit in index.search("m1_3", 10))


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_manifest_records_the_git_commit(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 10)})
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q"], ["add", "a.py"], ["commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(src), *cmd], check=True, env=env)
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    run_index(src, tmp_path / "out")
    manifest, _, _ = live(tmp_path / "out")
    assert manifest["source"]["git_commit"] == head


def test_unchanged_chunks_of_a_changed_file_reuse_their_vectors(tmp_path):
    text = code_file("stable", 60)
    src = make_tree(tmp_path / "src", {"grow.py": text, "other.py": code_file("o", 5)})
    out = tmp_path / "out"
    settings = IndexSettings.create(chunk_size=400, chunk_overlap=0)
    first = run_index(src, out, settings)
    bump(src / "grow.py", text + "# appended at the end\n")
    again = run_index(src, out, settings)
    n_old = len(chunk_text(text, 400, 0))
    n_new = len(chunk_text(text + "# appended at the end\n", 400, 0))
    # Every chunk but the last (whose text now ends differently) keeps its vector.
    assert again.chunks_reused == n_old - 1 and again.chunks_embedded == n_new - (n_old - 1)
    assert again.chunks_created == n_new and first.chunks_reused == 0
    _, rows, _ = live(out)
    run_index(src, tmp_path / "fresh", settings)
    _, fresh_rows, _ = live(tmp_path / "fresh")
    np.testing.assert_array_equal(comparable(rows)[1], comparable(fresh_rows)[1])
    stats_json = run_cli("index", src, "--output", out, "--chunk-size", "400",
                         "--chunk-overlap", "0", "--stats-json", tmp_path / "s.json", "--full")
    assert stats_json.returncode == 0
    keys = json.loads((tmp_path / "s.json").read_text())
    for key in ("files_added", "files_changed", "files_unchanged", "files_deleted",
                "chunks_embedded", "chunks_reused"):
        assert key in keys


def test_checksum_compares_content_instead_of_mtime(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 20), "b.py": code_file("b", 20)})
    out = tmp_path / "out"
    run_index(src, out)
    bump(src / "a.py", (src / "a.py").read_text())  # same bytes, new mtime (a checkout)
    by_mtime = run_index(src, out, dry_run=True)
    assert by_mtime.files_changed == 1
    by_hash = run_index(src, out, checksum=True)
    assert (by_hash.files_changed, by_hash.files_unchanged, by_hash.files_processed) == (0, 2, 0)
    assert by_hash.committed  # records the new mtime, so plain runs see no change afterwards
    _, _, files = live(out)
    recorded = dict(zip(files["path"].to_pylist(), files["mtime_ns"].to_pylist()))
    assert recorded["a.py"] == (src / "a.py").stat().st_mtime_ns
    assert run_index(src, out).up_to_date
    # Same size, same mtime, different bytes: only --checksum notices.
    stat = (src / "b.py").stat()
    (src / "b.py").write_text((src / "b.py").read_text().replace("b_1", "B_1"))
    os.utime(src / "b.py", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run_index(src, out).up_to_date
    changed = run_index(src, out, checksum=True)
    assert changed.files_changed == 1 and changed.files_processed == 1
    assert any("B_1" in c for c in live(out)[1]["content"].to_pylist())
