"""A search's query string → SearchRequest: the CLI's options by name, each refusal a reason."""

import pytest

from beam_pipeline.serve import MAX_K, MAX_QUERY_BYTES, BadRequest, search_request


def test_the_cli_options_by_their_names():
    request = search_request([
        ("q", "retry upload"), ("k", "5"), ("mode", "fts"), ("fuzzy", ""),
        ("language", "python"), ("language", "go"), ("exclude_language", "c"),
        ("path_filter", "src/**"), ("exclude_path", "**/tests/**"), ("min_score", "0.25"),
        ("files_only", "true"), ("exact", "1")])
    assert (request.query, request.k, request.mode) == ("retry upload", 5, "fts")
    assert request.fuzzy and request.files_only and request.exact and not request.regex
    assert request.languages == ("python", "go") and request.exclude_languages == ("c",)
    assert request.path_filters == ("src/**",) and request.exclude_paths == ("**/tests/**",)
    assert request.min_score == 0.25


def test_defaults_and_regex_mode():
    request = search_request([("q", "x")])
    assert (request.k, request.mode, request.regex, request.min_score) == (10, "hybrid", False,
                                                                         None)
    request = search_request([("q", r"def \w+"), ("mode", "regex"), ("case_sensitive", "yes")])
    assert (request.mode, request.regex, request.case_sensitive) == ("fts", True, True)


@pytest.mark.parametrize("items, reason", [
    ([("q", "x"), ("limit", "3")], "unknown option 'limit'"),
    ([("q", "x"), ("k", "3"), ("k", "4")], "option 'k' given twice"),
    ([("k", "3")], "q, the query, is missing"),
    ([("q", "  ")], "q, the query, is missing"),
    ([("q", "é" * (MAX_QUERY_BYTES // 2 + 1))], f"over {MAX_QUERY_BYTES} bytes"),
    ([("q", "x"), ("k", str(MAX_K + 1))], f"k must be from 1 to {MAX_K}"),
    ([("q", "x"), ("k", "0")], "k must be from 1"),
    ([("q", "x"), ("k", "ten")], "k must be a number"),
    ([("q", "x"), ("mode", "vector")], "unknown mode 'vector'"),
    ([("q", "x"), ("fuzzy", "maybe")], "fuzzy must be true or false"),
    ([("q", "x"), ("fuzzy", "1")], "regex, case_sensitive and fuzzy need fts"),
    ([("q", "x"), ("min_score", "2")], "outside [0, 1]"),
])
def test_what_cannot_be_answered_as_asked_is_refused_with_its_reason(items, reason):
    with pytest.raises(BadRequest, match=None) as refused:
        search_request(items)
    assert reason in str(refused.value) and "\n" not in str(refused.value)


def test_a_query_of_exactly_the_limit_is_taken():
    assert search_request([("q", "a" * MAX_QUERY_BYTES)]).query == "a" * MAX_QUERY_BYTES
