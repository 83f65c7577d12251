"""A search's query string → a SearchRequest, with the CLI's options under their own names.

    /search?q=retry+upload&k=5&mode=hybrid&language=python&exclude_path=**/tests/**

Every option of `beam-index search` is here, spelled with underscores: `q` (the query), `k`,
`mode` (hybrid | semantic | fts | regex; regex is fts with `regex`), `fuzzy`,
`case_sensitive`, `regex`, `language`, `exclude_language`, `path_filter`, `exclude_path`
(these four may repeat), `min_score`, `files_only`, `exact`. Anything else, a repeated
single option, a query over MAX_QUERY_BYTES or a `k` over MAX_K is refused with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..search import MODES, SearchRequest
from ..search.ranking import SearchError

MAX_QUERY_BYTES = 4096
MAX_K = 1000
DEFAULT_K = 10

_LISTS = {"language": "languages", "exclude_language": "exclude_languages",
          "path_filter": "path_filters", "exclude_path": "exclude_paths"}
_FLAGS = ("fuzzy", "case_sensitive", "regex", "files_only", "exact")
_SINGLE = ("q", "k", "mode", "min_score", *_FLAGS)
_TRUE, _FALSE = {"", "1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class BadRequest(SearchError):
    """A request that cannot be answered as asked; its message is the one-line reason."""


def search_request(items: Iterable[tuple[str, str]]) -> SearchRequest:
    """The SearchRequest of a query string's (name, value) pairs, in their order.

    Raises BadRequest naming what is wrong.
    """
    single: dict[str, str] = {}
    lists: dict[str, list[str]] = {field: [] for field in _LISTS.values()}
    for name, value in items:
        if name in _LISTS:
            lists[_LISTS[name]].append(value)
        elif name not in _SINGLE:
            raise BadRequest(f"unknown option {name!r} (options: "
                             f"{', '.join(sorted((*_SINGLE, *_LISTS)))})")
        elif name in single:
            raise BadRequest(f"option {name!r} given twice")
        else:
            single[name] = value
    query = single.get("q", "")
    if not query.strip():
        raise BadRequest("q, the query, is missing or empty")
    if len(query.encode("utf-8")) > MAX_QUERY_BYTES:
        raise BadRequest(f"the query is over {MAX_QUERY_BYTES} bytes")
    k = _number(single, "k", int, DEFAULT_K)
    if not 1 <= k <= MAX_K:
        raise BadRequest(f"k must be from 1 to {MAX_K}, got {k}")
    flags = {name: _flag(single, name) for name in _FLAGS}
    mode = single.get("mode", "hybrid")
    if mode == "regex":
        mode, flags["regex"] = "fts", True
    elif mode not in MODES:
        raise BadRequest(f"unknown mode {mode!r} (one of {', '.join((*MODES, 'regex'))})")
    try:
        return SearchRequest(query, k, mode, min_score=_number(single, "min_score", float, None),
                             **lists, **flags)
    except SearchError as exc:
        # Its reasons name the CLI's flags (--case-sensitive); here they are options.
        raise BadRequest(re.sub(r"--([a-z-]+)", lambda m: m.group(1).replace("-", "_"),
                                str(exc))) from None


def _number(single: dict[str, str], name: str, kind: type, default):
    if name not in single:
        return default
    try:
        return kind(single[name])
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {single[name]!r:.40}") from None


def _flag(single: dict[str, str], name: str) -> bool:
    value = single.get(name, "false").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequest(f"{name} must be true or false, got {value!r:.40}")
