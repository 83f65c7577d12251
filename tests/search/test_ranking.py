"""The pure parts of search: fusion, path globs, whole-line snippets, query terms."""

import pathspec
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_pipeline.search import (
    Piece,
    SearchError,
    SearchRequest,
    allowed_paths,
    file_text,
    fuse,
    nth_best,
    relative,
    top_rows,
    whole_lines,
)

PATHS = ["setup.py", "src/pkg/mod.py", "src/pkg/sub/deep.py", "tests/test_mod.py",
         "docs/index.md", "README.md"]


def test_score_fusion_weighs_normalised_bm25_against_the_cosine():
    lexical = relative([(1, 8.0), (2, 4.0), (3, 2.0)])
    assert lexical == [(1, 1.0), (2, 0.5), (3, 0.25)]
    fused = fuse(lexical, [(3, 0.9), (4, 0.8), (1, -0.2)], weight=0.4, fusion="score")
    assert [row for row, _ in fused] == [1, 3, 4, 2]
    assert dict(fused) == pytest.approx({1: 0.6, 2: 0.3, 3: 0.6 * 0.25 + 0.4 * 0.9, 4: 0.32})
    # A negative cosine counts as none, so every fused score is in [0, 1].
    assert all(0 <= score <= 1 for _, score in fused)
    assert relative([(5, 0.0)]) == [(5, 0.0)]


def test_rank_fusion_is_kept_for_comparison_and_scaled_to_one():
    fused = fuse([(1, 1.0), (2, 0.5), (3, 0.1)], [(3, 0.9), (1, 0.8), (4, 0.1)], 0.5, "rrf")
    assert [row for row, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(61 * (0.5 / 61 + 0.5 / 62))
    # A list of weight 0 only adds its rows after the others'.
    led = fuse([(1, 1.0), (2, 0.5)], [(3, 0.9), (2, 0.5), (4, 0.1)], 0.0, "rrf")
    assert [row for row, _ in led] == [1, 2, 3, 4] and led[0][1] == pytest.approx(1.0)


def test_a_minimum_outside_the_score_scale_is_refused():
    with pytest.raises(SearchError, match=r"outside \[0, 1\]"):
        SearchRequest("q", min_score=3.0)
    with pytest.raises(SearchError, match="unknown fusion"):
        SearchRequest("q", fusion="max")


@pytest.mark.parametrize("include, exclude, expected", [
    (["*.py"], [], {"setup.py", "src/pkg/mod.py", "src/pkg/sub/deep.py", "tests/test_mod.py"}),
    (["src/**"], ["deep.py"], {"src/pkg/mod.py"}),
    (["src/*.py"], [], set()),  # * does not cross folders, and the pattern is anchored
    (["src/**/*.py"], [], {"src/pkg/mod.py", "src/pkg/sub/deep.py"}),
    ([], ["*.md", "tests/"], {"setup.py", "src/pkg/mod.py", "src/pkg/sub/deep.py"}),
])
def test_path_globs_are_gitwildmatch(include, exclude, expected):
    request = SearchRequest("q", path_filters=include, exclude_paths=exclude)
    mask = allowed_paths(pa.array(PATHS), request)
    assert {path for path, keep in zip(PATHS, mask) if keep} == expected


def test_no_path_filters_means_every_path():
    assert allowed_paths(pa.array(PATHS), SearchRequest("q")) is None


MANY_PATHS = PATHS + ["a/b/c/d.txt", "x#y.py", "build/", "build/out.o", "src/build/x.c",
                      "a1b.txt", "a[b].txt", "deep/tests/t.py", "Makefile", "space name.py",
                      "ünï/cödé.py", ".hidden/x", "foo/bar/baz/foo/bar.py"]


@pytest.mark.parametrize("patterns", [
    ["*.py", "!tests/**"],
    ["**/tests/**", "!deep/"],
    ["src/**", "!*.c", "src/build/*"],
    ["a?b.txt", "a[0-9]b.txt", "a\\[b\\].txt"],
    ["\\#*", "x#y.py", "space name.py", "ünï/"],
    ["/Makefile", ".hidden/", "foo/**/bar.py"],
    ["**", "!**/*.md"],
])
def test_path_patterns_match_as_pathspec_does(patterns):
    """Each pattern's expression runs in Arrow's RE2, over all paths at once; the answer is
    pathspec's own, one path at a time."""
    spec = pathspec.PathSpec.from_lines("gitwildmatch", patterns)
    mask = allowed_paths(pa.array(MANY_PATHS), SearchRequest("q", path_filters=patterns))
    assert [bool(keep) for keep in mask] == [spec.match_file(path) for path in MANY_PATHS]


def test_whole_lines_come_from_the_neighbouring_chunks():
    text = "alpha = 1\nbeta = 2\ngamma = 3\ndelta = 4\n"
    pieces = [Piece(0, 14, text[0:14]), Piece(12, 27, text[12:27]), Piece(25, 40, text[25:40])]
    assert whole_lines(pieces[1], pieces[0], pieces[2]) == "beta = 2\ngamma = 3"
    assert whole_lines(pieces[0], None, pieces[1]) == "alpha = 1\nbeta = 2"
    assert whole_lines(pieces[2], pieces[1], None) == "gamma = 3\ndelta = 4"


def test_a_line_longer_than_the_neighbours_stays_cut_where_they_end():
    text = "x" * 30 + "\n"
    hit, before = Piece(20, 31, text[20:31]), Piece(10, 22, text[10:22])
    assert whole_lines(hit, before, None) == "x" * 20


@pytest.mark.parametrize("options, message", [
    ({"mode": "fuzzy"}, "unknown search mode"),
    ({"regex": True}, "need --fts"),
    ({"mode": "fts", "regex": True, "fuzzy": True}, "cannot be combined"),
])
def test_requests_that_cannot_be_answered(options, message):
    with pytest.raises(SearchError, match=message):
        SearchRequest("q", **options)


@pytest.mark.parametrize("query, name", [
    ("readConfig", True), ("read_config", True), ("HTTPServer", True), ("utf8", True),
    ("Sessions", True), ("config", False), ("read config", False), ("__init__", False),
    ("x", False),
])
def test_what_counts_as_a_name(query, name):
    from beam_pipeline.lexical import looks_like_a_name

    assert looks_like_a_name(query) is name


def test_query_terms_are_cut_as_the_content_is():
    from beam_pipeline import lexical

    parts = lexical.analyzers()["parts"]
    assert parts.analyze("readConfigFile") == ["read", "config", "file"]
    assert parts.analyze("handle_request") == ["handle", "request"]
    # Not every piece is a known sub-word: the identifier then stays whole.
    assert parts.analyze("xyzzyPlugh") == ["xyzzyplugh"]
    analyzers = lexical.analyzers()
    assert lexical.cut(analyzers, "words", "read_config(x) readConfig") == \
        ["read_config", "readconfig"]
    # Digits belong to words; single ASCII characters are not terms.
    assert lexical.cut(analyzers, "words", "error 404 in v2.load(i, 2to3)") == \
        ["error", "404", "in", "v2", "load", "2to3"]


@pytest.mark.parametrize("text", [
    "read_config(x) -> dict:", "a.b[c]{d}<e>|f&g", "tab\there\nnewline", "",
    "café = naïve_thing(x)", "x→y — «quoted» 東京_駅", "surrogate \udcff here",
])
def test_word_text_cuts_at_every_non_word_character(text):
    """The ASCII byte table and the regex agree: words are the runs of \\w, nothing else."""
    import re

    from beam_pipeline.lexical import word_text

    prepared = word_text(text)
    assert prepared.split() == re.findall(r"\w+", text)


def test_rows_of_a_shard_come_from_their_row_groups_only(tmp_path):
    """Snippets read a hit and its neighbours: only the row groups holding them are read, and
    a neighbour past the end is left out."""
    import pyarrow.parquet as pq

    from beam_pipeline.source import storage

    path = str(tmp_path / "part-x.parquet")
    pq.write_table(pa.table({"n": list(range(10))}), path, row_group_size=3)  # 3+3+3+1
    table, where = storage.read_parquet_rows(path, [2, 3, 9, 10, -1], ["n"])
    assert sorted(where) == [2, 3, 9]
    assert {row: table["n"][at].as_py() for row, at in where.items()} == {2: 2, 3: 3, 9: 9}
    assert table.num_rows == 3 + 3 + 1  # the middle group, 6..8, was not read


def test_exact_ranking_ranks_only_allowed_rows_above_the_minimum():
    import numpy as np

    matrix = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]] * np.float32(0.9)
    query = np.array([1, 0.5, 0, 0], dtype=np.float32)
    assert [row for row, _ in top_rows(matrix, query, 3)] == [0, 4, 1]
    allowed = np.array([False, True, True, True, True])
    assert [row for row, _ in top_rows(matrix, query, 2, allowed)] == [4, 1]
    assert top_rows(matrix, query, 10, allowed, min_score=0.5) == [(4, pytest.approx(0.9))]
    assert top_rows(matrix, query, 5, np.zeros(5, dtype=bool)) == []


def test_exact_ranking_breaks_ties_by_row_as_the_approximate_index_does():
    import numpy as np

    from beam_pipeline.search.ann import _best

    # Equal vectors (the same words in several files) score alike wherever they sit.
    rng = np.random.default_rng(3)
    distinct = rng.normal(size=(4, 8)).astype(np.float32)
    matrix = distinct[rng.integers(0, 4, size=500)]
    query = distinct[1] + np.float32(0.1) * distinct[2]
    for n in (1, 3, 7, 40):
        exact = top_rows(matrix, query, n)
        rows = np.arange(len(matrix))
        assert exact == _best(rows, matrix @ query, n, None)
        tied = [row for row, score in exact if score == exact[0][1]]
        assert tied == sorted(tied)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([-1.0, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0]) | st.floats(-1, 1),
                min_size=1, max_size=120),
       st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_exact_ranking_is_a_full_sort_whatever_the_sample_sees(values, n, seed):
    """nth_best bounds the n best by a sample of the scores: many ties, masked rows and n near
    the sample's size must still give what sorting every row gives."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scores = np.asarray(values, dtype=np.float32)
    matrix = np.zeros((len(scores), 2), dtype=np.float32)
    matrix[:, 0] = scores
    allowed = rng.random(len(scores)) < 0.7 if seed % 2 else None
    kept = [row for row in range(len(scores)) if allowed is None or allowed[row]]
    expected = sorted(kept, key=lambda row: (-scores[row], row))[:n]
    found = top_rows(matrix, np.array([1, 0], dtype=np.float32), n, allowed)
    assert [row for row, _ in found] == expected
    assert nth_best(scores, min(n, len(scores))) == sorted(scores, reverse=True)[
        min(n, len(scores)) - 1]


def test_a_files_text_is_spliced_from_its_chunks():
    text = "import os\n\n\ndef a():\n    return 1\n\n\ndef b():\n    return 2\n"
    first, second = text.index("def a"), text.index("def b")
    # Overlapping chunks, then a gap of blank lines no chunk holds, out of order.
    pieces = [(Piece(second, len(text), text[second:]), 8),
              (Piece(0, 14, text[:14]), 1),
              (Piece(first - 2, second - 2, text[first - 2:second - 2]), 2)]
    assert file_text(pieces) == text
    gapped = [(Piece(0, 10, text[:10]), 1), (Piece(first, second, text[first:second]), 4)]
    assert file_text(gapped).split("\n")[3] == "def a():"  # line numbers hold across a gap
    assert file_text([]) == ""
