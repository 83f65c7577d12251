"""What a search asks for, and the pure parts of answering it: filters, fusion and snippets.

Modes and their scores (what `min_score` compares):

- `semantic`: cosine similarity of the query's vector and the row's, in [-1, 1].
- `fts`: BM25 over the lexical index's terms (0 and up, unbounded; it grows with rare terms
  and repeats). With `regex`, the number of matches of the pattern in the row's text.
- `hybrid` (the default): reciprocal-rank fusion of both lists, sum of 1 / (60 + rank) over
  the lists a row is in (at most 2/61 ≈ 0.033). A query that is one identifier with a capital,
  an underscore or a digit (`readConfig`, `read_config`, `HTTPServer`) asks for a name, which the lexical list answers exactly: its
  order leads, and the semantic list only adds rows after it (its weight is 0; on the
  quality set this took MRR@10 from 0.52 to 0.61 at equal recall). `min_score` applies to
  the cosine of the semantic list before fusion: the fused number says little on its own.

Filters select rows before any ranking, so a filtered search still returns `k` hits when `k`
rows pass the filters. Path globs use .gitignore's syntax (gitwildmatch): `**` crosses
folders, `*` does not, and a pattern without `/` matches a file name at any depth
(`*.py`, `test_*`); `src/**/*.py` is anchored at the root.

Vector ranking is exact (every row scored) unless the snapshot holds an approximate index
(ann.py: only snapshots of at least `--ann-min-rows` rows, 2 M by default); then the graph's
candidates are scored exactly, so scores keep their meaning and only recall is approximate.
`exact` ranks every row anyway.

Example::

    request = SearchRequest("parse config", k=5, languages=("python",),
                            exclude_paths=("tests/**",))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .columns import mask_of

MODES = ("hybrid", "fts", "semantic")
RRF_K = 60  # the usual constant of reciprocal-rank fusion (Cormack et al.)


class SearchError(ValueError):
    """A search request that cannot be answered as asked (bad pattern, mode, …)."""


@dataclass(frozen=True)
class SearchRequest:
    query: str
    k: int = 10
    mode: str = "hybrid"
    languages: tuple[str, ...] = ()
    exclude_languages: tuple[str, ...] = ()
    path_filters: tuple[str, ...] = ()
    exclude_paths: tuple[str, ...] = ()
    min_score: float | None = None
    regex: bool = False
    case_sensitive: bool = False
    fuzzy: bool = False
    files_only: bool = False
    exact: bool = False  # rank every row even where the snapshot has an approximate index
    notes: list[str] = field(default_factory=list, compare=False)

    def __post_init__(self):
        if self.mode not in MODES:
            raise SearchError(f"unknown search mode {self.mode!r} (one of {', '.join(MODES)})")
        if (self.regex or self.case_sensitive or self.fuzzy) and self.mode != "fts":
            raise SearchError("--regex, --case-sensitive and --fuzzy need --fts")
        if self.regex and self.fuzzy:
            raise SearchError("--regex and --fuzzy cannot be combined")
        for name in ("languages", "exclude_languages", "path_filters", "exclude_paths"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))

    @property
    def filtered(self) -> bool:
        return bool(self.languages or self.exclude_languages or self.path_filters
                    or self.exclude_paths)

    @property
    def fetch(self) -> int:
        """How many candidates each ranked list brings to fusion or to per-file folding."""
        return max(50, 5 * self.k) * (4 if self.files_only else 1)


def _gitwildmatch(patterns: Sequence[str]):
    """The compiled patterns of a gitwildmatch list, in order (None for no patterns)."""
    if not patterns:
        return None
    import pathspec

    try:
        return pathspec.PathSpec.from_lines("gitwildmatch", patterns).patterns
    except (ValueError, TypeError) as exc:
        raise SearchError(f"bad path pattern: {exc}") from None


def _matches(paths: pa.Array, patterns) -> np.ndarray:
    """Which paths the patterns match, as pathspec decides (the last pattern that matches a
    path says whether it is in; `!` patterns take paths out), each pattern's regular
    expression run over all paths at once by Arrow (RE2): 25k paths in a few ms, where
    matching them one by one in Python took 100 ms."""
    matched = np.zeros(len(paths), dtype=bool)
    for pattern in patterns:
        if pattern.include is None:  # a blank line or a comment
            continue
        try:
            hit = mask_of(pc.match_substring_regex(paths, pattern.regex.pattern))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:  # beyond RE2's syntax
            raise SearchError(f"unsupported path pattern {pattern.pattern!r}: {exc}") from None
        matched[hit] = pattern.include
    return matched


def allowed_paths(paths: pa.Array, request: SearchRequest) -> np.ndarray | None:
    """A mask of the `paths` (relative posix paths) the path filters let through, or None
    when there are no path filters."""
    include, exclude = _gitwildmatch(request.path_filters), _gitwildmatch(request.exclude_paths)
    if include is None and exclude is None:
        return None
    mask = np.ones(len(paths), dtype=bool) if include is None else _matches(paths, include)
    if exclude is not None:
        mask &= ~_matches(paths, exclude)
    return mask


def fuse(lists: Sequence[Sequence[int]], weights: Sequence[float] | None = None
         ) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion of ranked lists of row numbers; (row, score), best
    first. A list of weight 0 only adds its rows after the others'.

    Ties keep the order in which rows first appear (the first list wins)."""
    weights = [1.0] * len(lists) if weights is None else weights
    scores: dict[int, float] = {}
    for ranked, weight in zip(lists, weights):
        for rank, row in enumerate(ranked, start=1):
            scores[row] = scores.get(row, 0.0) + weight / (RRF_K + rank)
    order = {row: i for i, row in enumerate(dict.fromkeys(r for ranked in lists for r in ranked))}
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))


def top_rows(matrix: np.ndarray, query: np.ndarray, n: int, allowed: np.ndarray | None = None,
             min_score: float | None = None) -> list[tuple[int, float]]:
    """The `n` rows of `matrix` most similar to `query` (unit vectors: cosine), as (row,
    score), best first; only rows in the `allowed` mask and at or above `min_score` rank.
    Exact: every row is scored (benchmarks/search_scale.py measures what that costs)."""
    scores = matrix @ query
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    if min_score is not None:
        scores = np.where(scores >= min_score, scores, -np.inf)
    n = min(n, int(np.count_nonzero(scores > -np.inf)))
    if n <= 0:
        return []
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(row), float(scores[row])) for row in top]


@dataclass(frozen=True)
class Piece:
    """One chunk of a file: its character span in the file and its text."""

    char_start: int
    char_end: int
    text: str


def whole_lines(hit: Piece, before: Piece | None, after: Piece | None) -> str:
    """The hit's text widened to whole lines, with its neighbours' text (chunks overlap or
    touch, so the file's text around the hit is theirs). Lines longer than a chunk stay cut
    where the neighbours end."""
    prefix = ""
    if before is not None and before.char_start < hit.char_start <= before.char_end:
        prefix = before.text[:hit.char_start - before.char_start]
    suffix = ""
    if after is not None and after.char_start <= hit.char_end < after.char_end:
        suffix = after.text[hit.char_end - after.char_start:]
    start = 0 if hit.char_start == 0 or not prefix else prefix.rfind("\n") + 1
    head = prefix[start:] if hit.char_start else ""
    if hit.text.endswith("\n"):
        tail = ""
    else:
        newline = suffix.find("\n")
        tail = suffix if newline < 0 else suffix[:newline]
    return (head + hit.text + tail).rstrip("\n")
