"""The approximate vector index (issue 15, part 6): keys, ranking against exact ranking, and
a snapshot's graph built, carried forward, verified and searched."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import code_file, make_tree, run_cli

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.layout.schema import MANIFEST_FILE
from beam_pipeline.search import Index, ann, top_rows
from beam_pipeline.store.verify import verify_index

DIM = 32


def _ids(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [rng.bytes(16).hex() for _ in range(n)]


def test_a_key_is_the_first_16_hex_digits_of_the_id():
    ids = _ids(50)
    array = pa.array(ids)
    assert ann.row_keys(array).tolist() == [int(i[:16], 16) for i in ids]
    assert ann.row_keys(array.slice(7, 20)).tolist() == [int(i[:16], 16) for i in ids[7:27]]
    chunked = pa.chunked_array([array.slice(0, 10), array.slice(10)])
    assert ann.row_keys(chunked).tolist() == ann.row_keys(array).tolist()
    with pytest.raises(ValueError):
        ann.row_keys(pa.array(["a" * 31]))
    with pytest.raises(ValueError):
        ann.row_keys(pa.array(["g" * 32]))


def test_keys_must_be_distinct_and_never_the_empty_slot_marker():
    assert ann.distinct(np.array([1, 2, 3], np.uint64))
    assert not ann.distinct(np.array([1, 2, 1], np.uint64))
    assert not ann.distinct(np.array([1, 2**64 - 1], np.uint64))


def _clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, DIM)).astype(np.float32)
    matrix = rng.standard_normal((n, DIM)).astype(np.float32) + 2 * centres[rng.integers(0, 20, n)]
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def graph_and_matrix(tmp_path_factory):
    """A graph built through `ann.build` from a staged shard of 3,000 rows."""
    staging = tmp_path_factory.mktemp("ann")
    matrix = _clustered(3_000)
    ids = _ids(len(matrix))
    _write_shard(staging / "part-a.parquet", ids, matrix)
    entry = ann.build(str(staging), [{"path": "part-a.parquet", "rows": len(ids)}], DIM, None, 1)
    graph = ann.ApproximateIndex.open(str(staging), entry, len(ids))
    return graph, matrix, entry


def _write_shard(path: Path, ids: list[str], matrix: np.ndarray) -> None:
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), DIM)
    pq.write_table(pa.table({"id": ids, "vector": vectors}), path)


def _recall(found, exact) -> float:
    """Share of the exact top scores reached (ties count as found)."""
    bar = exact[-1][1] - 1e-6
    return sum(score >= bar for _, score in found) / len(exact)


def test_the_graph_ranks_as_exact_ranking_does(graph_and_matrix):
    graph, matrix, entry = graph_and_matrix
    assert entry["rows"] == 3_000 and entry["added"] == 3_000
    queries = _clustered(20, seed=5)
    recalls = []
    for query in queries:
        found, exact = graph.rank(matrix, query, 10), top_rows(matrix, query, 10)
        assert len(found) == 10
        # Scores are exact scores of the rows returned, best first.
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        assert all(abs(float(matrix[r] @ query) - s) < 1e-5 for r, s in found)
        recalls.append(_recall(found, exact))
    assert np.mean(recalls) >= 0.95


def test_filters_apply_before_ranking_on_every_path(graph_and_matrix, monkeypatch):
    graph, matrix, _ = graph_and_matrix
    query = _clustered(1, seed=9)[0]
    rng = np.random.default_rng(3)
    few = np.zeros(len(matrix), bool)
    few[rng.choice(len(matrix), 40, replace=False)] = True
    # Few rows: ranked exactly over those rows.
    assert graph.rank(matrix, query, 10, few) == top_rows(matrix, query, 10, few)
    # Many rows: the graph's candidates, over-fetched, then filtered.
    monkeypatch.setattr(ann, "EXACT_ROWS", 10)
    half = rng.random(len(matrix)) < 0.5
    found = graph.rank(matrix, query, 10, half)
    assert len(found) == 10 and all(half[row] for row, _ in found)
    assert _recall(found, top_rows(matrix, query, 10, half)) >= 0.9
    # The rows the filter keeps are the farthest from the query: the candidates miss them
    # all, and the query falls back to exact ranking rather than return fewer hits.
    far = np.zeros(len(matrix), bool)
    far[np.argsort(matrix @ query)[:400]] = True
    assert graph.rank(matrix, query, 10, far) == top_rows(matrix, query, 10, far)
    floor = top_rows(matrix, query, 10)[4][1] - 1e-6  # the two paths round differently
    found = graph.rank(matrix, query, 10, None, floor)
    # Five rows reach the floor; the graph's recall is approximate.
    assert 4 <= len(found) <= 5 and all(score >= floor for _, score in found)


def test_rows_that_share_a_key_leave_the_snapshot_without_a_graph(tmp_path):
    ids = _ids(10, seed=1)
    ids[3] = ids[7][:16] + ids[3][16:]
    _write_shard(tmp_path / "part-a.parquet", ids, _clustered(10))
    shards = [{"path": "part-a.parquet", "rows": 10}]
    assert ann.build(str(tmp_path), shards, DIM, None, 1) is None
    assert ann.build(str(tmp_path), shards, DIM, None, 11) is None  # below the threshold
    assert not (tmp_path / ann.ANN_FILE).exists()


def test_many_removals_rebuild_the_graph(tmp_path):
    base, staging = tmp_path / "base", tmp_path / "staging"
    base.mkdir(), staging.mkdir()
    ids, matrix = _ids(400), _clustered(400)
    _write_shard(base / "part-a.parquet", ids, matrix)
    entry = ann.build(str(base), [{"path": "part-a.parquet", "rows": 400}], DIM, None, 1)
    # 40 of 400 rows replaced: updated in place.
    _write_shard(staging / "part-b.parquet", _ids(40, seed=2) + ids[40:], matrix)
    shards = [{"path": "part-b.parquet", "rows": 400}]
    updated = ann.build(str(staging), shards, DIM, (str(base), entry), 1)
    assert (updated["added"], updated["removed"]) == (40, 40)
    # 200 more replaced: past REBUILD_SHARE of the rows since the last build.
    (staging / ann.ANN_FILE).rename(base / ann.ANN_FILE)
    _write_shard(staging / "part-b.parquet", _ids(240, seed=3) + ids[240:], matrix)
    rebuilt = ann.build(str(staging), shards, DIM, (str(base), updated), 1)
    assert (rebuilt["added"], rebuilt["removed"]) == (400, 0)


TREE = {f"pkg/m{i}.py": code_file(f"m{i}", 40) for i in range(20)}


def _manifest(out: Path) -> dict:
    return Index.open(out).manifest


def _rows_of(index: Index, name: str) -> int:
    return len(index.search("x", 1000, mode="semantic", exact=True, path_filters=[name]))


def test_a_snapshot_past_the_threshold_holds_a_graph_carried_forward(tmp_path):
    src = make_tree(tmp_path / "src", {**TREE, "web/app.js": "function go() {\n  return 1;\n}\n"})
    out = tmp_path / "out"
    settings = IndexSettings.create(chunk_size=200)
    run_index(src, out, settings, ann_min_rows=10)
    entry = _manifest(out)["ann"]
    rows = _manifest(out)["counts"]["rows"]
    assert entry["rows"] == entry["added"] == rows and verify_index(out) == []
    index = Index.open(out)
    for name, key in ((ann.ANN_FILE, "sha256"), (ann.KEYS_FILE, "keys_sha256")):
        data = (Path(index.directory) / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry[key], name
    for query in ("m3_function_7", "return the total", "go"):
        approximate = index.search(query, 10, mode="semantic")
        exact = index.search(query, 10, mode="semantic", exact=True)
        bar = exact[-1]["score"] - 1e-6
        assert sum(hit["score"] >= bar for hit in approximate) >= 9
    hits = index.search("return", 10, mode="semantic", path_filters=["m2.py", "m5.py"])
    assert len(hits) == 10 and {h["path"] for h in hits} <= {"pkg/m2.py", "pkg/m5.py"}

    gone = _rows_of(index, "m1.py") + _rows_of(index, "m7.py")
    (src / "pkg/m1.py").write_text(code_file("changed", 5))
    (src / "pkg/m7.py").unlink()
    run_index(src, out, settings, ann_min_rows=10)
    index = Index.open(out)
    entry = index.manifest["ann"]
    assert entry["rows"] == index.manifest["counts"]["rows"]
    assert (entry["added"], entry["removed"]) == (_rows_of(index, "m1.py"), gone)
    assert verify_index(out) == []
    # The graph finds each new row from its own vector.
    matrix, meta = index._rows
    for row in np.flatnonzero(np.asarray(meta["path"].to_pylist()) == "pkg/m1.py"):
        assert index.approximate.rank(matrix, matrix[row], 1)[0][1] > 1 - 1e-5


def test_below_the_threshold_no_graph_until_a_run_finds_one_missing(tmp_path):
    src = make_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    run_index(src, out)
    assert "ann" not in _manifest(out)
    lines = []
    stats = run_index(src, out, ann_min_rows=1, announce=lines.append)
    assert stats.committed and not stats.up_to_date
    assert any("has no approximate vector index: adding it" in line for line in lines)
    assert _manifest(out)["ann"]["rows"] == _manifest(out)["counts"]["rows"]
    assert run_index(src, out, ann_min_rows=1).up_to_date


def _indexed_with_graph(tmp_path: Path) -> tuple[Path, Index]:
    out = tmp_path / "out"
    run_index(make_tree(tmp_path / "src", TREE), out, ann_min_rows=1)
    return out, Index.open(out)


def test_verify_finds_a_graph_that_misses_rows(tmp_path):
    out, index = _indexed_with_graph(tmp_path)
    from usearch.index import Index as Hnsw

    path = Path(index.directory) / ann.ANN_FILE
    graph = Hnsw.restore(str(path))
    graph.remove(int(ann.row_keys(index._rows[1]["id"])[0]))
    graph.save(str(path))
    manifest_path = Path(index.directory) / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["ann"]["bytes"] = path.stat().st_size
    manifest["ann"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    problems = verify_index(out)
    assert len(problems) == 1 and problems[0].startswith("approximate index:")


def test_verify_finds_a_keys_file_that_misplaces_rows(tmp_path):
    out, index = _indexed_with_graph(tmp_path)
    path = Path(index.directory) / ann.KEYS_FILE
    table = np.load(path)
    table[1, [0, 1]] = table[1, [1, 0]]  # two keys name each other's rows
    np.save(path, table)
    assert verify_index(out) == [(f"approximate index: {ann.KEYS_FILE}: content differs from "
                                 "the sha256 in the manifest (altered or corrupt)")]
    # Without hashes (quick), the keys are still checked against the rows.
    assert verify_index(out, quick=True) == [
        f"approximate index: {ann.KEYS_FILE} does not map the rows' keys to their rows"]


def test_the_cli_builds_and_searches_the_graph_or_ranks_exactly(tmp_path):
    src = make_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    assert run_cli("index", src, "--output", out, "-q", "--ann-min-rows", "1").returncode == 0
    assert _manifest(out)["ann"]["rows"] == _manifest(out)["counts"]["rows"]

    def scores(*flags):
        proc = run_cli("search", out, "m4_function_3", "--semantic", "--json", *flags)
        assert proc.returncode == 0, proc.stderr
        return [hit["score"] for hit in json.loads(proc.stdout)]

    exact, approximate = scores("--exact"), scores()
    assert len(exact) == len(approximate) == 10
    assert sum(score >= exact[-1] - 1e-6 for score in approximate) >= 9
    assert run_cli("index", src, "--output", out, "--ann-min-rows", "0").returncode == 2


def test_an_altered_base_graph_is_built_afresh_not_carried(tmp_path, caplog):
    out, index = _indexed_with_graph(tmp_path)
    from usearch.index import Index as Hnsw

    path = Path(index.directory) / ann.ANN_FILE
    graph = Hnsw.restore(str(path))
    graph.remove(int(ann.row_keys(index._rows[1]["id"])[0]))  # a row gone: searches miss it
    graph.save(str(path))
    (tmp_path / "src" / "extra.py").write_text("def extra_function():\n    return 1\n")
    run_index(tmp_path / "src", out, ann_min_rows=1)
    entry = _manifest(out)["ann"]
    assert entry["added"] == entry["rows"] == _manifest(out)["counts"]["rows"]  # all of them
    assert "built afresh" in caplog.text and verify_index(out) == []
