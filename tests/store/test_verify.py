"""`search` and `verify` on real indexes, including damaged ones."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import code_file, make_tree, run_cli

from beam_pipeline import run_index
from beam_pipeline.layout.schema import MANIFEST_FILE
from beam_pipeline.search import VECTOR_CACHE, Index, IndexReadError
from beam_pipeline.store.verify import check_index, verify_index

TREE = {
    "config/loader.py": "import json\n\ndef load_json_config(path):\n"
                        "    with open(path) as fh:\n        return json.load(fh)\n",
    "net/server.py": "import socket\n\nclass EchoServer:\n    def handle_request(self, sock):\n"
                     "        sock.sendall(sock.recv(4096))\n",
    "math/matrix.py": "def matmul(a, b):\n    return [[sum(x * y for x, y in zip(r, c))"
                      " for c in zip(*b)] for r in a]\n",
    "big.py": code_file("filler", 120),
}


@pytest.fixture
def index_dir(tmp_path):
    src = make_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    run_index(src, out)
    return out


def test_search_api_and_cli_agree(index_dir):
    hits = Index.open(index_dir).search("load json config", k=3)
    assert hits[0]["path"] == "config/loader.py"
    assert hits[0]["line_start"] == 1 and hits[0]["content"].startswith("import json")
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    proc = run_cli("search", index_dir, "load json config", "-k", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    cli_hits = json.loads(proc.stdout)
    assert [(h["path"], h["line_start"], h["line_end"]) for h in cli_hits] == [
        (h["path"], h["line_start"], h["line_end"]) for h in hits]
    # Fields are only ever added (issue 15 added language, snippet, mode and, in the hybrid
    # mode, each list's rank; issue 34 each list's own score).
    assert set(cli_hits[0]) == {"path", "line_start", "line_end", "score", "content",
                                "language", "snippet", "mode", "ranks", "fts_score",
                                "semantic_score"}
    text = run_cli("search", index_dir, "echo server socket", "-k", "1").stdout
    assert text.startswith("net/server.py:1-5  ")


def test_verify_accepts_a_sound_index_and_compares_with_the_source(index_dir, tmp_path):
    assert verify_index(index_dir) == []
    proc = run_cli("verify", index_dir)
    assert proc.returncode == 0 and "sound" in proc.stderr
    src = tmp_path / "src"
    (src / "net/server.py").write_text("changed = True\n")
    (src / "new.py").write_text("x = 1\n")
    (src / "math/matrix.py").unlink()
    problems = verify_index(index_dir, src)
    assert sorted(problems) == ["math/matrix.py: in the index but no longer in the source",
                                "net/server.py: changed since it was indexed (stale)",
                                "new.py: in the source but missing from the index"]


def shard_of(index_dir):
    index = Index.open(index_dir)
    return index, Path(index.shard_path(index.shards[0]))


def test_verify_catches_a_deleted_shard(index_dir):
    _, shard = shard_of(index_dir)
    shard.unlink()
    proc = run_cli("verify", index_dir)
    assert proc.returncode == 1
    assert f"shard {shard.name} is missing" in proc.stdout


def test_verify_catches_a_truncated_shard(index_dir):
    _, shard = shard_of(index_dir)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    assert f"shard {shard.name}: {len(data) // 2} bytes, manifest says {len(data)}" in \
        verify_index(index_dir)


def test_verify_catches_a_duplicated_row(index_dir):
    _, shard = shard_of(index_dir)
    table = pq.read_table(shard)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), shard)
    problems = verify_index(index_dir)
    assert "1 duplicated row ids" in problems
    assert any("rows" in p and "manifest says" in p for p in problems)
    assert any("duplicated [0]" in p for p in problems)


def test_verify_catches_missing_chunks_and_bad_vectors(index_dir):
    _, shard = shard_of(index_dir)
    table = pq.read_table(shard)
    keep = [p != "big.py" or i != 1 for p, i in zip(table["path"].to_pylist(),
                                                     table["chunk_index"].to_pylist())]
    pq.write_table(table.filter(pa.array(keep)), shard)
    problems = verify_index(index_dir)
    assert any(p.startswith("big.py: rows") for p in problems)


def test_every_file_of_a_snapshot_has_its_sha256_in_the_manifest(index_dir):
    index = Index.open(index_dir)
    manifest, folder = index.manifest, Path(index.directory)
    recorded = {name["path"]: name["sha256"] for name in manifest["shards"]}
    recorded[manifest["files_table"]] = manifest["files_table_sha256"]
    recorded.update({f"lexical/{item['name']}": item["sha256"]
                     for item in manifest["lexical"]["files"]})
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
               if p.is_file() and p.name != MANIFEST_FILE}
    assert set(recorded) == on_disk
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def _flip_bytes(path: Path, count: int = 64) -> None:
    """Change `count` bytes in the middle of a file, keeping its size."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 - count // 2
    data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


def test_verify_proves_content_not_sizes_a_flipped_lexical_file(index_dir):
    index = Index.open(index_dir)
    item = max(index.manifest["lexical"]["files"], key=lambda item: item["bytes"])
    _flip_bytes(Path(index.directory) / "lexical" / item["name"])
    expected = (f"lexical index: {item['name']}: content differs from the sha256 in the "
                "manifest (altered or corrupt)")
    assert verify_index(index_dir) == [expected]
    proc = run_cli("verify", index_dir)
    assert proc.returncode == 1 and expected in proc.stdout
    # --quick keeps the size check, which this passes, and says what it compared.
    proc = run_cli("verify", index_dir, "--quick")
    assert proc.returncode == 0 and "sizes compared" in proc.stderr, proc.stderr


def test_verify_proves_content_a_shard_with_rewritten_text(index_dir):
    index = Index.open(index_dir)
    shard = Path(index.shard_path(index.shards[0]))
    table = pq.read_table(shard)
    content = [text.replace("json", "yaml") for text in table["content"].to_pylist()]
    rewritten = table.set_column(table.schema.get_field_index("content"),
                                 table.schema.field("content"), pa.array(content))
    pq.write_table(rewritten, shard)
    assert rewritten.schema == table.schema and rewritten.num_rows == table.num_rows
    problems = verify_index(index_dir)
    assert any(p.startswith(f"shard {shard.name}: ") for p in problems), problems
    proc = run_cli("verify", index_dir)
    assert proc.returncode == 1 and shard.name in proc.stdout


def test_verify_compares_the_vector_cache_with_the_shards(index_dir):
    index = Index.open(index_dir)
    index.search("json", 1, mode="semantic")  # writes the cache
    cache = Path(index.directory) / VECTOR_CACHE
    matrix = np.load(cache)
    assert verify_index(index_dir) == []
    np.save(cache, np.zeros_like(matrix))  # same shape and type: searches would use it
    expected = [(f"{VECTOR_CACHE}: differs from the shards' vectors (searches read it: delete "
                "it and the next search writes it again)")]
    assert verify_index(index_dir) == expected
    assert verify_index(index_dir, quick=True) == expected  # cheap next to reading the shards
    cache.unlink()
    assert verify_index(index_dir) == []


def test_verify_says_when_a_snapshot_has_no_hashes(index_dir):
    """An older version's snapshot: sizes still compared, and verify says it could not do
    more."""
    index = Index.open(index_dir)
    path = Path(index.directory) / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    for shard in manifest["shards"]:
        del shard["sha256"]
    path.write_text(json.dumps(manifest))
    verdict = check_index(index_dir)
    assert verdict.problems == []
    assert len(verdict.notes) == 1 and "have no sha256" in verdict.notes[0]
    proc = run_cli("verify", index_dir)
    assert proc.returncode == 0 and "no sha256" in proc.stderr


@pytest.mark.parametrize("evil", ["../outside.parquet", "/etc/passwd", "part-x/../../y.parquet"])
def test_manifests_naming_files_outside_the_snapshot_are_refused(index_dir, evil):
    index = Index.open(index_dir)
    manifest_path = Path(index.directory) / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][0]["path"] = evil
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexReadError, match="invalid shard path"):
        Index.open(index_dir)
    assert any("invalid shard path" in p for p in verify_index(index_dir))
    proc = run_cli("search", index_dir, "json")
    assert proc.returncode == 1 and "invalid shard path" in proc.stderr


def test_search_and_verify_on_a_folder_without_an_index(tmp_path):
    proc = run_cli("search", tmp_path, "x")
    assert proc.returncode == 1 and "holds no index" in proc.stderr
    assert verify_index(tmp_path) == [f"{tmp_path} holds no index (no CURRENT file)"]
    shutil.rmtree(tmp_path)


def test_the_vector_cache_gives_the_same_hits_and_is_refreshed_when_wrong(index_dir):
    first = Index.open(index_dir).search("echo server socket", k=4)
    cache = Path(Index.open(index_dir).directory) / VECTOR_CACHE
    assert cache.is_file()
    assert Index.open(index_dir).search("echo server socket", k=4) == first
    np.save(cache, np.zeros((3, 7), np.float32))  # a cache of the wrong shape is rebuilt
    assert Index.open(index_dir).search("echo server socket", k=4) == first
    assert np.load(cache).shape[1] == Index.open(index_dir).dim


def test_a_re_index_refuses_to_carry_an_altered_base(tmp_path):
    """Rows and index files a re-index carries forward are checked against the base's hashes
    as they are read: otherwise the next snapshot would hold them under fresh hashes and pass
    verify. Files carried whole keep the base's recorded hash (verify catches them)."""
    from beam_pipeline.store.reindex import CorruptSnapshotError

    src = make_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    run_index(src, out)
    index = Index.open(out)
    shard = Path(index.shard_path(index.shards[0]))
    table = pq.read_table(shard)
    content = [text.replace("json", "yaml") for text in table["content"].to_pylist()]
    pq.write_table(table.set_column(table.schema.get_field_index("content"),
                                    table.schema.field("content"), pa.array(content)), shard)
    (src / "net/server.py").write_text("changed = True\n")  # its shard is carried in part
    with pytest.raises(CorruptSnapshotError, match=f"{shard.name}: content differs"):
        run_index(src, out)
    proc = run_cli("index", src, "--output", out, "-q")
    assert proc.returncode == 1 and "run with --full" in proc.stderr, proc.stderr
    assert run_cli("index", src, "--output", out, "-q", "--full").returncode == 0
    assert verify_index(out) == []


def test_a_re_index_refuses_an_altered_lexical_base(tmp_path):
    from beam_pipeline.store.reindex import CorruptSnapshotError

    src = make_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    run_index(src, out)
    index = Index.open(out)
    item = max(index.manifest["lexical"]["files"], key=lambda item: item["bytes"])
    _flip_bytes(Path(index.directory) / "lexical" / item["name"])
    (src / "new.py").write_text("x = 1\n")
    with pytest.raises(CorruptSnapshotError, match=f"{item['name']}: content differs"):
        run_index(src, out)
