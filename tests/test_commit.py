import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest

from beam_pipeline import commit
from beam_pipeline.records import FileRecord
from beam_pipeline.schema import CURRENT_FILE, MANIFEST_FILE, SNAPSHOTS_DIR
from beam_pipeline.write import files_table, write_staging_summary, write_table


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
