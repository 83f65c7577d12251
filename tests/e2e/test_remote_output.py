"""An output on another filesystem: s3:// through Beam's own S3 filesystem, against a real S3
protocol server (moto) on 127.0.0.1. Nothing in the index may depend on a local folder: no
hard links, no rename of a folder, no lock file."""

import json

import pyarrow as pa
import pytest
from conftest import code_file, make_tree, run_cli

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.layout.schema import CURRENT_FILE
from beam_pipeline.search import Index
from beam_pipeline.source import storage
from beam_pipeline.store.commit import OutputError
from beam_pipeline.store.verify import verify_index

BUCKET = "index-bucket"


@pytest.fixture(scope="module")
def s3_flags(s3):
    s3.bucket(BUCKET)
    return s3.flags


def _rows(index: Index) -> pa.Table:
    return pa.concat_tables(storage.read_parquet(index.shard_path(s)) for s in index.shards
                            ).sort_by("id")


def test_index_reindex_search_and_verify_on_s3(tmp_path, s3_flags):
    src = make_tree(tmp_path / "src", {
        **{f"pkg/m{i}.py": code_file(f"m{i}", 30) for i in range(6)},
        "net/server.py": "import socket\n\ndef serve_forever(port):\n    s = socket.socket()\n",
    })
    out = f"s3://{BUCKET}/nightly/index"
    settings = IndexSettings.create(chunk_size=400)
    # A graph on every snapshot: the approximate index goes through FileSystems too.
    first = run_index(src, out, settings, pipeline_options=s3_flags, keep=1, ann_min_rows=1,
                      prune_grace_s=0)
    assert first.committed and first.files_processed == 7
    local = run_index(src, tmp_path / "local", settings)
    assert _rows(Index.open(out, s3_flags)).equals(_rows(Index.open(tmp_path / "local")))

    (src / "pkg/m0.py").write_text(code_file("changed", 3))
    (src / "pkg/m5.py").unlink()
    second = run_index(src, out, settings, pipeline_options=s3_flags, keep=1, ann_min_rows=1,
                      prune_grace_s=0)
    assert second.committed and (second.files_changed, second.files_deleted) == (1, 1)
    assert second.files_unchanged == 5 and second.pruned == [first.snapshot_id]
    index = Index.open(out)
    assert index.snapshot_id == second.snapshot_id != local.snapshot_id
    paths = set(_rows(index)["path"].to_pylist())
    assert paths == {f"pkg/m{i}.py" for i in range(5)} | {"net/server.py"}
    assert index.search("changed_2", k=1)[0]["path"] == "pkg/m0.py"
    graph = index.manifest["ann"]
    assert graph["rows"] == index.manifest["counts"]["rows"] and graph["added"] > 0
    assert index.search("changed_2", k=3, mode="semantic") == \
        index.search("changed_2", k=3, mode="semantic", exact=True)
    assert verify_index(out) == []
    # Only the live snapshot and CURRENT remain: no staging, no lock, nothing of the first run.
    names = storage.list_tree(out)
    assert CURRENT_FILE in names
    assert {n.split("/")[1] for n in names if n.startswith("snapshots/")} == {second.snapshot_id}
    assert not [n for n in names if n.startswith(".staging/") or n == ".lock"]


def test_cli_indexes_into_and_searches_s3(tmp_path, s3_flags):
    src = make_tree(tmp_path / "src", {"net/server.py": "def serve_forever(port):\n    pass\n",
                                       "util/text.py": "def slugify(title):\n    return title\n"})
    out = f"s3://{BUCKET}/cli/index"
    done = run_cli("index", src, "--output", out, "--quiet", *s3_flags)
    assert done.returncode == 0, done.stderr
    found = run_cli("search", out, "serve forever port", "-k", "1", "--json", *s3_flags)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["path"] == "net/server.py"
    checked = run_cli("verify", out, *s3_flags)
    assert checked.returncode == 0 and "sound" in checked.stderr


def test_an_unknown_scheme_is_a_clear_error(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": "x = 1\n"})
    with pytest.raises(OutputError, match="nosuchfs"):
        run_index(src, "nosuchfs://bucket/index")


def test_worker_processes_write_to_s3_with_the_runs_options(tmp_path, s3_flags):
    # The workers are separate processes: they must get the S3 options from the pipeline, not
    # from the launcher's memory.
    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 25) for i in range(8)})
    out = f"s3://{BUCKET}/multiprocess/index"
    stats = run_index(src, out, IndexSettings.create(chunk_size=400), pipeline_options=[
        *s3_flags, "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert stats.committed and stats.files_processed == 8
    run_index(src, tmp_path / "local", IndexSettings.create(chunk_size=400))
    assert _rows(Index.open(out, s3_flags)).equals(_rows(Index.open(tmp_path / "local")))
