"""SOURCE as a URL: an object-store copy of a repository (S3 via moto on 127.0.0.1), listed,
filtered, read and re-indexed through Beam's FileSystems exactly as a local tree is."""

import time
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import code_file, make_tree

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.search import Index
from beam_pipeline.source import storage
from beam_pipeline.source.discover import SourceError, iter_source_files
from beam_pipeline.store.verify import verify_index

BUCKET = "source-bucket"

TREE = {
    ".gitignore": "*.log\nsecret/\n",
    "a.py": code_file("a", 12),
    "debug.log": "ignored",
    "secret/key.py": "ignored",
    "pkg/.gitignore": "!keep.log\ngenerated_*.py\n",
    "pkg/keep.log": "kept by negation\n",
    "pkg/generated_x.py": "ignored",
    "pkg/mod.py": code_file("mod", 30),
    "pkg/sub/deep.log": "ignored",
    "pkg/sub/code.py": code_file("code", 8),
    "node_modules/lib/index.js": "excluded",
    ".git/config": "excluded",
    "env1/pyvenv.cfg": "home = /usr",
    "env1/lib/site.py": "excluded",
    "big.txt": "x" * 5000,
    "blob.bin": b"\x00\x01\x02" * 40,
    "empty.py": "",
}
SETTINGS = {"chunk_size": 300, "batch_size": 4, "max_file_size": 4000}


@pytest.fixture(scope="module")
def bucket(s3):
    s3.bucket(BUCKET)
    storage.use_options(s3.flags)
    return BUCKET


def _listing(root, **kw):
    skipped = Counter()
    found = [(e.path, e.size) for e in iter_source_files(root, skipped=skipped, **kw)]
    return found, skipped


def _rows(out, flags=()) -> pa.Table:
    index = Index.open(out, flags)
    return pa.concat_tables(storage.read_parquet(index.shard_path(s))
                            for s in index.shards).sort_by("id")


def test_a_url_is_discovered_with_the_rules_of_a_local_tree(tmp_path, s3, bucket):
    local = make_tree(tmp_path / "src", TREE)
    url = s3.upload(bucket, "same-rules", TREE)
    assert _listing(url, max_file_size=4000) == _listing(local, max_file_size=4000)
    found, skipped = _listing(url, max_file_size=4000)
    assert [p for p, _ in found] == [".gitignore", "a.py", "blob.bin", "empty.py",
                                     "pkg/.gitignore", "pkg/keep.log", "pkg/mod.py",
                                     "pkg/sub/code.py"]
    assert skipped == Counter({"gitignored": 4, "excluded": 3, "too_large": 1})


def test_rows_and_stats_equal_a_local_sources(tmp_path, s3, bucket):
    local = make_tree(tmp_path / "src", TREE)
    url = s3.upload(bucket, "rows", TREE)
    settings = IndexSettings.create(**SETTINGS)
    expected = run_index(local, tmp_path / "local", settings)
    stats = run_index(url, tmp_path / "out", settings, pipeline_options=s3.flags)
    assert stats.committed and stats.files_processed == expected.files_processed == 7
    assert stats.skipped_by_reason == expected.skipped_by_reason
    assert stats.skipped_by_reason["binary"] == 1  # sniffed by ChunkFile, on the workers
    assert _rows(tmp_path / "out").equals(_rows(tmp_path / "local"))
    assert Index.open(tmp_path / "out").manifest["source"] == {"root": url, "git_commit": None}
    # Paths stay relative and posix; verify reads the store too.
    assert set(_rows(tmp_path / "out")["path"].to_pylist()) == {
        "a.py", "pkg/keep.log", "pkg/mod.py", "pkg/sub/code.py", ".gitignore",
        "pkg/.gitignore"}
    assert verify_index(tmp_path / "out", source=url, max_file_size=4000) == []


def test_reindexing_a_url_sees_changed_added_and_deleted_objects(tmp_path, s3, bucket):
    files = {f"m{i}.py": code_file(f"m{i}", 10 + i) for i in range(5)}
    url = s3.upload(bucket, "reindex", files)
    out, settings = tmp_path / "out", IndexSettings.create(**SETTINGS)
    first = run_index(url, out, settings, pipeline_options=s3.flags)
    assert first.files_processed == 5
    files["m0.py"] = code_file("changed", 3)  # another size: changed by size and mtime
    files["new.py"] = code_file("new", 4)
    del files["m4.py"]
    s3.upload(bucket, "reindex", {"m0.py": files["m0.py"], "new.py": files["new.py"]})
    s3.delete(bucket, "reindex", "m4.py")
    second = run_index(url, out, settings, pipeline_options=s3.flags)
    assert (second.files_changed, second.files_added, second.files_deleted,
            second.files_unchanged) == (1, 1, 1, 3)
    local = make_tree(tmp_path / "final", files)
    run_index(local, tmp_path / "expected", settings)
    assert _rows(out).equals(_rows(tmp_path / "expected"))

    time.sleep(1.1)  # S3 keeps modification times to the second
    s3.upload(bucket, "reindex", {"m1.py": files["m1.py"]})  # same bytes, new mtime
    checked = run_index(url, out, settings, pipeline_options=s3.flags, checksum=True)
    assert checked.up_to_date is False and checked.files_unchanged == 5
    assert checked.files_changed == 0 and checked.chunks_embedded == 0
    assert _rows(out).equals(_rows(tmp_path / "expected"))
    by_stat = run_index(url, out, settings, pipeline_options=s3.flags)
    assert by_stat.up_to_date  # the checksum run recorded the new mtime


def test_explicit_files_of_a_url(tmp_path, s3, bucket):
    files = {"a.py": code_file("a", 5), "b.py": code_file("b", 6)}
    url = s3.upload(bucket, "explicit", files)
    out = tmp_path / "out"
    stats = run_index(url, out, IndexSettings.create(**SETTINGS), pipeline_options=s3.flags,
                      files=["a.py", f"{url}/b.py", "missing.py"])
    assert (stats.files_processed, stats.failed_files) == (2, 1)
    assert "missing.py" in stats.failures[0]["path"]
    table = pq.read_table(Index.open(out).shard_path(Index.open(out).shards[0]))
    assert sorted(set(table["path"].to_pylist())) == ["a.py", "b.py"]


@pytest.mark.parametrize("url, says", [
    (f"s3://{BUCKET}/no/such/prefix", "holds no files"),
    ("s3://no-such-bucket/repo", "holds no files"),  # Beam lists a missing bucket as empty
    ("nosuchfs://bucket/repo", "cannot read source nosuchfs://bucket/repo"),
])
def test_a_url_that_holds_nothing_is_a_clear_error(tmp_path, s3, bucket, url, says):
    with pytest.raises(SourceError, match=says) as err:
        run_index(url, tmp_path / "out", pipeline_options=s3.flags)
    assert "\n" not in str(err.value)


def test_workers_get_the_filesystem_options_and_nothing_else():
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(["--s3_endpoint_url=http://127.0.0.1:9", "--s3_region_name=r",
                               "--runner=PortableRunner", "--environment_type=EXTERNAL",
                               "--job_endpoint=localhost:1"])
    assert storage.filesystem_options(options) == {"s3_endpoint_url": "http://127.0.0.1:9",
                                                   "s3_region_name": "r"}
