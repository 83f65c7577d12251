"""Beam metrics are checked against the pipeline's own outputs before the commit; a runner
without metrics gets its stats from those outputs."""

import pyarrow as pa
import pytest
from conftest import code_file, make_tree, run_cli

from beam_pipeline import IndexSettings, StatsMismatch, run_index
from beam_pipeline.layout.schema import CURRENT_FILE
from beam_pipeline.run.stats import contradictions, disagreements, output_counters
from beam_pipeline.search import Index

NO_METRICS = "--runner=beam_pipeline.testing.runners.NoMetricsRunner"
DOUBLE_COUNTING = "--runner=beam_pipeline.testing.runners.DoubleCountingRunner"


def _records(rows):
    names = ["size", "total_chunks", "status", "error"]
    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})


def test_output_counters_read_the_files_table_and_the_shards():
    records = _records([(10, 2, "indexed", None), (5, 0, "indexed", None),
                        (7, 0, "failed", "boom"), (3, 0, "skipped", "binary"),
                        (4, 0, "skipped", "binary")])
    outputs = output_counters(records, [{"rows": 2}])
    assert outputs == {"files_processed": 2, "failed_files": 1, "chunks_created": 2,
                       "total_size": 15, "rows_written": 2, "shards_written": 1,
                       "skipped_binary": 2}
    assert contradictions(outputs) == []
    assert disagreements(dict(outputs), outputs) == []


def test_every_disagreement_is_named():
    outputs = output_counters(_records([(10, 3, "indexed", None)]), [{"rows": 2}])
    assert contradictions(outputs) == [
        "the shards hold 2 rows but the files table counts 3 chunks"]
    counters = {**outputs, "files_processed": 2, "skipped_binary": 1}
    assert disagreements(counters, outputs) == [
        "files_processed 2 in the metrics, 1 in the outputs",
        "skipped_binary 1 in the metrics, 0 in the outputs"]


def _tree(root):
    files = {f"pkg/m{i}.py": code_file(f"m{i}", 15 + i) for i in range(6)}
    files["blob.bin"] = b"\x00\x01" * 50
    files["empty.py"] = ""
    return make_tree(root, files)


def test_a_runner_without_metrics_gets_stats_from_the_outputs(tmp_path):
    src = _tree(tmp_path / "src")
    settings = IndexSettings.create(chunk_size=300, batch_size=4)
    reference = run_index(src, tmp_path / "ref", settings)
    stats = run_index(src, tmp_path / "out", settings, pipeline_options=[NO_METRICS])
    assert reference.stats_source == "metrics" and stats.stats_source == "outputs"
    assert stats.committed and stats.files_processed == reference.files_processed == 7
    for name in ("chunks_created", "failed_files", "total_size", "rows_written",
                 "shards_written", "skipped_files", "skipped_by_reason"):
        assert getattr(stats, name) == getattr(reference, name), name
    assert stats.chunks_embedded == 0 < reference.chunks_embedded  # unknown without metrics
    assert Index.open(tmp_path / "out").manifest["stats"]["stats_source"] == "outputs"


def test_the_cli_says_where_the_stats_came_from(tmp_path):
    src = _tree(tmp_path / "src")
    done = run_cli("index", src, "--output", tmp_path / "out", NO_METRICS)
    assert done.returncode == 0, done.stderr
    assert "from the pipeline's outputs: the runner reports no metrics" in done.stderr


def test_metrics_that_disagree_with_the_outputs_stop_the_commit(tmp_path):
    src = _tree(tmp_path / "src")
    first = run_index(src, tmp_path / "out")
    (src / "pkg/m0.py").write_text(code_file("changed", 4))
    with pytest.raises(StatsMismatch, match="files_processed .* in the metrics, 1 in the "
                       "outputs"):
        run_index(src, tmp_path / "out", pipeline_options=[DOUBLE_COUNTING])
    assert (tmp_path / "out" / CURRENT_FILE).read_text().strip() == first.snapshot_id
    done = run_cli("index", src, "--output", tmp_path / "out", DOUBLE_COUNTING)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        "beam-index: error: the run's counts do not add up, nothing committed: "
        "files_processed"), done.stderr
