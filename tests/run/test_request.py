"""run_index takes a typed, frozen RunRequest, checked when it is made; keyword arguments are a
shorthand for its fields."""

import dataclasses

import pytest
from conftest import code_file, make_tree

from beam_pipeline import RunRequest, run_index
from beam_pipeline.errors import UsageError
from beam_pipeline.layout.schema import CURRENT_FILE


@pytest.mark.parametrize("field, value, message", [
    ("keep", 0, "--keep"), ("prune_grace_s", -1, "--prune-grace"),
    ("journal", "sometimes", "--journal"), ("journal_max_mb", 0, "--journal-max-mb"),
    ("ann_min_rows", 0, "--ann-min-rows")])
def test_a_bad_value_is_refused_when_the_request_is_made(field, value, message):
    with pytest.raises(UsageError, match=message):
        RunRequest(**{field: value})


def test_a_request_is_frozen():
    request = RunRequest(full=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.full = False


def test_keywords_are_the_requests_fields(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 5), "b.py": code_file("b", 5)})
    said: dict[str, list[str]] = {"one": [], "two": [], "three": []}
    by_request = run_index(src, tmp_path / "one",
                           request=RunRequest(dry_run=True, announce=said["one"].append))
    by_keywords = run_index(src, tmp_path / "two", dry_run=True, announce=said["two"].append)
    # Keywords refine a given request.
    refined = run_index(src, tmp_path / "three",
                        request=RunRequest(dry_run=False, announce=said["three"].append),
                        dry_run=True)
    assert by_request.chunks_to_embed == by_keywords.chunks_to_embed == \
        refined.chunks_to_embed > 0
    for out, lines in said.items():  # a dry run says so and commits nothing
        assert any(line.startswith("Dry run: 2 files") for line in lines), lines
        assert not (tmp_path / out / CURRENT_FILE).exists()
    with pytest.raises(TypeError, match="nonsense"):
        run_index(src, tmp_path / "four", nonsense=1)


def test_a_change_set_reindexes_the_listed_and_drops_the_removed(tmp_path):
    """What `watch` hears, given as a request: no walk; listed files re-indexed, removed ones
    (a file, a whole folder) dropped, every other file carried forward."""
    import shutil

    import pyarrow.parquet as pq

    from beam_pipeline.layout.schema import FILES_TABLE
    from beam_pipeline.search import Index
    from beam_pipeline.store.verify import verify_index

    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 5), "b.py": code_file("b", 5),
                                       "c.py": code_file("c", 5), "d/e.py": code_file("e", 5),
                                       "d/f/g.py": code_file("g", 5), "dd.py": code_file("dd", 5)})
    out = tmp_path / "out"
    run_index(src, out)
    (src / "a.py").unlink()
    shutil.rmtree(src / "d")
    (src / "b.py").write_text(code_file("b_new", 5))
    (src / "h.py").write_text(code_file("h", 5))
    (src / "c.py").write_text(code_file("c_unheard", 5))  # changed, but not in the change set
    stats = run_index(src, out, files=["b.py", str(src / "h.py")], removed=["a.py", "d"])
    assert (stats.files_added, stats.files_changed, stats.files_deleted) == (1, 1, 3)
    index = Index.open(out)
    paths = sorted(set(pq.read_table(out / "snapshots" / index.snapshot_id / FILES_TABLE)
                       ["path"].to_pylist()))
    assert paths == ["b.py", "c.py", "dd.py", "h.py"]
    assert index.search("b_new_1", k=1, mode="fts")[0]["path"] == "b.py"
    assert index.search("c_1", k=1, mode="fts")[0]["path"] == "c.py"  # carried as it was
    assert verify_index(out) == []
    # Only removals: a commit that drops them, nothing embedded.
    (src / "h.py").unlink()
    only = run_index(src, out, removed=["h.py"])
    assert only.files_deleted == 1 and only.chunks_embedded == 0 and only.committed
