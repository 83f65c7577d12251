"""`beam-index status`: the live snapshot, when a run last caught up with SOURCE, and whether
a run holds OUT now, so a stale index is visible."""

import os

from conftest import code_file, make_tree

from beam_pipeline import run_index
from beam_pipeline.cli import main
from beam_pipeline.store.lock import OutputLock, running
from beam_pipeline.store.status import index_status


def test_a_whole_walk_records_that_it_caught_up_a_change_set_does_not(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 5), "b.py": code_file("b", 5)})
    out = str(tmp_path / "out")
    first = run_index(src, out)
    status = index_status(out)
    assert status["snapshot"] == first.snapshot_id and status["caught_up_at"]
    assert (status["files"], status["rows"]) == (2, first.chunks_created)
    assert status["run_in_progress"] is None
    (src / "a.py").write_text(code_file("a2", 5))
    (src / "c.py").write_text(code_file("c", 5))
    subset = run_index(src, out, files=["a.py"])  # c.py is not in: the tree is not caught up
    status = index_status(out)
    assert status["snapshot"] == subset.snapshot_id and status["caught_up_at"] is None
    again = run_index(src, out)
    assert index_status(out)["caught_up_at"] and again.snapshot_id == read_snapshot(out)


def read_snapshot(out):
    return index_status(out)["snapshot"]


def test_a_run_holding_the_output_is_shown(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert running(str(out)) is None
    with OutputLock(out):
        assert running(str(out))["pid"] == os.getpid()
    assert running(str(out)) is None


def test_the_status_command(tmp_path, capsys):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 5)})
    out = tmp_path / "out"
    assert main(["status", str(out)]) == 1
    assert "no index" in capsys.readouterr().err
    stats = run_index(src, out)
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert stats.snapshot_id in text and "caught up" in text and "run in progress no" in text
