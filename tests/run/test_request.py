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
