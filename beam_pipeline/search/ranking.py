"""What a search asks for, and the pure parts of answering it: filters, fusion and snippets.

Every hit of every mode carries one `score` in [0, 1], higher is better, and `min_score`
keeps the hits whose shown `score` is at least that number:

- `semantic`: the cosine of the query's vector and the row's, a negative cosine (unrelated
  text) shown as 0. Not (1 + cos) / 2: that would give unrelated text 0.5, and a threshold
  of 0.5 would keep it.
- `fts`: BM25 over the lexical index's terms, divided by the query's best BM25: the top hit
  scores 1 and the others say how close to it they come. BM25 itself is unbounded and its
  scale moves with the query's length and the rarity of its words (one rare word scores
  about 10, a six-word question 30 and up), so a fixed saturation s / (s + k) would rate a
  short query's best hit lower than a long query's tenth; a fraction of the best means the
  same in every query. With `fuzzy` the same. With `regex`, the row's number of matches
  divided by the most matches of any row.
- `hybrid` (the default): 0.4 × the fts score + 0.6 × the semantic score (as above), over
  the rows of both lists (a row missing from a list has 0 there), so the fused score keeps
  the cosine's absolute meaning: in a question, a row the vectors find unrelated cannot
  reach 0.5 on its words alone. A query that is one identifier with a capital, an underscore or a digit
  (`readConfig`, `read_config`, `HTTPServer`) asks for a name, which the lexical list answers
  exactly: there the weights are 0.9 and 0.1. `fusion="rrf"` fuses the ranks instead
  (reciprocal-rank fusion, Σ w / (60 + rank), scaled so a row first in both lists scores 1;
  the vector list's weight is ½, and 0 for a name). Score fusion won on the quality set with
  both embedders measured (README: Quality; `python -m benchmarks.quality --fusions
  rrf,score`).

Each hybrid hit also keeps each list's own score and rank (`lists` in the hit), for those who
want them.

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

from ..errors import SearchError
from ..layout.columns import mask_of

MODES = ("hybrid", "fts", "semantic")
FUSIONS = ("score", "rrf")
RRF_K = 60  # the usual constant of reciprocal-rank fusion (Cormack et al.)
# The semantic list's share of a hybrid score with fusion="score", chosen on the quality set
# (README: Quality): 0.6 led RRF's MRR@10 with hashing and with minilm. A name wants its words.
QUESTION_WEIGHT = 0.6
NAME_WEIGHT = 0.1
SAMPLE_STRIDE = 16  # nth_best: a sixteenth of the scores bounds the rest


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
    fusion: str = "score"  # see FUSIONS and the module's docstring
    notes: list[str] = field(default_factory=list, compare=False)

    def __post_init__(self):
        if self.mode not in MODES:
            raise SearchError(f"unknown search mode {self.mode!r} (one of {', '.join(MODES)})")
        if (self.regex or self.case_sensitive or self.fuzzy) and self.mode != "fts":
            raise SearchError("--regex, --case-sensitive and --fuzzy need --fts")
        if self.fusion not in FUSIONS:
            raise SearchError(f"unknown fusion {self.fusion!r} (one of {', '.join(FUSIONS)})")
        if self.min_score is not None and not 0 <= self.min_score <= 1:
            raise SearchError(f"min_score {self.min_score} is outside [0, 1], the scale of "
                              "every score")
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


def relative(ranked: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """(row, score) with each score divided by the best: the top row scores 1."""
    best = max((score for _, score in ranked), default=0.0)
    if best <= 0:
        return [(row, 0.0) for row, _ in ranked]
    return [(row, score / best) for row, score in ranked]


def fuse(lexical: Sequence[tuple[int, float]], semantic: Sequence[tuple[int, float]],
         weight: float, fusion: str = "score") -> list[tuple[int, float]]:
    """One ranked list from the lexical list (scores in [0, 1], see `relative`) and the
    semantic one (cosines), as (row, score in [0, 1]), best first; `weight` is the semantic
    list's share: (1 - weight) × lexical + weight × max(cosine, 0), or with fusion="rrf" the
    weighted reciprocal ranks over the most they can sum to.

    Ties keep the order in which rows first appear (the lexical list wins)."""
    lists = (lexical, semantic)
    weights = (1.0 - weight, weight)
    scores: dict[int, float] = {}
    for ranked, share in zip(lists, weights):
        for rank, (row, score) in enumerate(ranked, start=1):
            part = (1 / (RRF_K + rank)) if fusion == "rrf" else min(max(score, 0.0), 1.0)
            scores[row] = scores.get(row, 0.0) + share * part
    if fusion == "rrf":
        scores = {row: score * (RRF_K + 1) for row, score in scores.items()}
    order = {row: i for i, row in enumerate(dict.fromkeys(r for ranked in lists
                                                          for r, _ in ranked))}
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
    # Every row tied with the n-th competes, and ties go to the lower row, as in the
    # approximate index's ranking (ann._best): both answer alike when vectors are equal (the
    # same words in two files).
    top = np.flatnonzero(scores >= nth_best(scores, n))
    top = top[np.lexsort((top, -scores[top]))][:n]
    return [(int(row), float(scores[row])) for row in top]


def nth_best(scores: np.ndarray, n: int) -> float:
    """The n-th highest of `scores` (1 <= n <= len(scores)).

    Partitioning 275k scores takes 3.5 ms, a fifth of an exact query. The n-th best of every
    SAMPLE_STRIDE-th score is at most the n-th best of all (the sample's n are among all), so
    the n best are among the scores at or above it: about SAMPLE_STRIDE × n of them, partitioned
    in well under a millisecond. The answer is the same number, not an estimate."""
    sample = scores[::SAMPLE_STRIDE]
    if len(sample) > n:
        scores = scores[scores >= np.partition(sample, len(sample) - n)[len(sample) - n]]
    return scores[np.argpartition(scores, len(scores) - n)[len(scores) - n]]


@dataclass(frozen=True)
class Piece:
    """One chunk of a file: its character span in the file and its text."""

    char_start: int
    char_end: int
    text: str


def file_text(pieces: list[tuple[Piece, int]]) -> str:
    """A file's text from its chunks, each with the line it starts on: spliced by their
    character spans (chunks touch or overlap). Text no chunk holds (the blank lines a syntax
    chunker leaves between definitions) comes back as line breaks, so line numbers hold."""
    text, shift = "", 0  # shift: where the file's offsets fall in `text`, after a gap
    for piece, line_start in sorted(pieces, key=lambda pair: pair[0].char_start):
        at = piece.char_start + shift
        if at > len(text):
            text += "\n" * max(0, line_start - 1 - text.count("\n"))
            shift, at = len(text) - piece.char_start, len(text)
        if at + len(piece.text) > len(text):
            text = text[:at] + piece.text
    return text


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
