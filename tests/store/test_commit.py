import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest

from beam_pipeline.layout.records import FileRecord
from beam_pipeline.layout.schema import CURRENT_FILE, MANIFEST_FILE, SNAPSHOTS_DIR
from beam_pipeline.store import commit
from beam_pipeline.store.write import files_table, write_staging_summary, write_table


def test_snapshot_ids_sort_by_time_and_are_unique():
    t0 = dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC)
    ids = [commit.new_snapshot_id(t0 + dt.timedelta(milliseconds=m)) for m in (0, 1, 999, 1000)]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert ids[0].startswith("20260102T030405.006Z-")
    assert commit.new_snapshot_id(t0) != commit.new_snapshot_id(t0)


def test_prepare_output_refuses_files_and_symlinks(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(commit.OutputError, match="not a folder"):
        commit.prepare_output(tmp_path / "file")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(commit.OutputError, match="symlink"):
        commit.prepare_output(tmp_path / "link")
    assert not any((tmp_path / "elsewhere").iterdir())


def stage(out, snapshot_id, shards=("part-a.parquet",), stray=("part-orphan.parquet",)):
    staging = Path(commit.create_staging(out, snapshot_id))
    table = pa.table({"x": [1, 2]})
    for name in (*shards, *stray):
        write_table(table, str(staging / name))
    records = [FileRecord("b.py", 3, 1, "h", 1), FileRecord("a.py", 1, 2).failed("boom")]
    write_staging_summary(records, [{"path": s, "rows": 2, "files": 1, "bytes": 1}
                                    for s in shards], str(staging))
    return staging


def test_commit_keeps_only_reported_shards_and_flips_current(tmp_path):
    out = tmp_path / "out"
    commit.prepare_output(out)
    assert commit.read_current(out) is None
    staging = stage(out, "s1")
    summary = commit.staged_summary(staging)
    assert sorted(p.name for p in staging.glob("part-*")) == ["part-a.parquet"]
    failures = commit.staged_failures(staging)
    assert failures == [{"path": "a.py", "reason": "boom"}]
    counts = commit.staged_counts(staging)
    assert counts == {"files": 2, "files_indexed": 1, "files_failed": 1, "files_skipped": 0,
                      "files_stale": 0}
    manifest = commit.build_manifest("s1", {"f": 1}, summary["shards"], counts, failures, [],
                                     {"files_processed": 1}, {"root": "/r"})
    target = Path(commit.commit_snapshot(out, staging, manifest))
    assert commit.read_current(out) == "s1" == (out / CURRENT_FILE).read_text().strip()
    assert target == out / SNAPSHOTS_DIR / "s1" and not staging.exists()
    written = json.loads((target / MANIFEST_FILE).read_text())
    assert written["shards"] == [{"path": "part-a.parquet", "rows": 2, "files": 1, "bytes": 1}]
    assert written["counts"] == {**counts, "rows": 2}
    assert sorted(p.name for p in target.iterdir()) == [
        "files.parquet", "manifest.json", "part-a.parquet"]


def test_files_table_is_sorted_and_typed():
    table = files_table([FileRecord("z.py", 1, 1, "h", 2),
                         FileRecord("a.py", 5, 9).skipped("binary")])
    assert table.column("path").to_pylist() == ["a.py", "z.py"]
    assert table.column("status").to_pylist() == ["skipped", "indexed"]
    assert table.column("error").to_pylist() == ["binary", None]
    assert table.schema.field("mtime_ns").type == pa.int64()


def test_a_commit_makes_every_file_durable_before_the_manifest_and_current(tmp_path,
                                                                          monkeypatch):
    """Power-cut safety is an order of system calls: each staged file's data and folder are
    fsynced before the manifest that names them, the manifest before the rename that
    publishes it, the rename before CURRENT, CURRENT's data before its own rename."""
    import os

    from conftest import code_file, make_tree

    from beam_pipeline import run_index

    calls = []
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def renamed(real):
        def rename(src, dst, *args, **kwargs):
            calls.append(("rename", os.path.realpath(src), os.path.realpath(dst)))
            return real(src, dst, *args, **kwargs)
        return rename

    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 30) for i in range(5)})
    out = (tmp_path / "out").resolve()
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", renamed(real_rename))
    monkeypatch.setattr(os, "replace", renamed(real_replace))
    snapshot_id = run_index(src, out).snapshot_id
    monkeypatch.undo()

    def at(call):
        assert call in calls, call
        return calls.index(call)

    staging, live = out / ".staging" / snapshot_id, out / SNAPSHOTS_DIR / snapshot_id
    manifest = at(("fsync", str(staging / f".{MANIFEST_FILE}.tmp")))
    published = at(("rename", str(staging), str(live)))
    current_data = at(("fsync", str(out / f".{CURRENT_FILE}.tmp")))
    current = at(("rename", str(out / f".{CURRENT_FILE}.tmp"), str(out / CURRENT_FILE)))
    staged = [path for path in live.rglob("*") if path.name != MANIFEST_FILE]
    assert any(path.suffix == ".parquet" for path in staged)
    assert any(path.parent.name == "lexical" for path in staged)
    for path in staged:  # files and folders, each before the manifest
        assert at(("fsync", str(staging / path.relative_to(live)))) < manifest, path
    assert at(("fsync", str(staging))) < manifest
    assert manifest < calls.index(("fsync", str(staging)), manifest) < published
    assert published < at(("fsync", str(out / SNAPSHOTS_DIR))) < current_data < current
    assert current < calls.index(("fsync", str(out)), current)
