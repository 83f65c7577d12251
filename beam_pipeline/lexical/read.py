"""Reading a snapshot's lexical index: `LexicalIndex` (BM25 search with the filters in the
query) and how a query is cut into terms (`Terms`).
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from ..source import storage
from .fields import (
    DEFINING_WORDS,
    FUZZY_MIN_LENGTH,
    LEXICAL_DIR,
    PART_WEIGHT,
    PLACE_WEIGHT,
    LexicalError,
    analyzers,
    cut,
    fetch,
    open_index,
    usable,
)


@dataclass(frozen=True)
class Terms:
    """A query cut into the index's terms."""

    words: list[str]  # lowercased whole words and identifiers, in query order, unique
    parts: list[str]  # lowercased pieces of the identifiers
    identifier: bool  # the query is one name (readConfig, read_config, HTTPServer), not prose

    @property
    def names(self) -> list[str]:
        """The words that may name a definition: all of a one-word query, else the words
        that look like identifiers (pieces joined by case or underscores)."""
        if len(self.words) == 1:
            return self.words
        return [word for word in self.words if "_" in word.strip("_") or word not in
                self.parts]


_NAME = re.compile(r"\s*([^\W\d]\w+)\s*")


def looks_like_a_name(text: str) -> bool:
    """One identifier with a capital, an underscore or a digit inside: code, not a word."""
    found = _NAME.fullmatch(text)
    if found is None:
        return False
    name = found.group(1)
    return "_" in name.strip("_") or any(c.isdigit() for c in name) or name != name.lower()


class LexicalIndex:
    """A snapshot's lexical index, opened for search.

    A remote snapshot's files are copied into a local temporary folder first (tantivy reads
    local files only).
    """

    def __init__(self, directory: str, temporary: bool):
        self._dir = directory
        self._temporary = temporary
        self._index = open_index(directory, create=False)
        self._searcher = self._index.searcher()
        self._analyzers = analyzers()
        self._schema = self._index.schema

    @classmethod
    def open(cls, snapshot_dir: str, entry) -> LexicalIndex:
        if not usable(entry):
            raise LexicalError("the snapshot has no lexical index this version reads")
        folder = storage.join(snapshot_dir, LEXICAL_DIR)
        if storage.is_local(folder):
            try:
                return cls(folder, temporary=False)
            except (OSError, ValueError):
                pass  # e.g. a read-only folder: tantivy's reader wants its lock file there
        local = tempfile.mkdtemp(prefix="beam-index-lexical-")
        try:
            fetch(snapshot_dir, entry, local)
            return cls(local, temporary=True)
        except (OSError, ValueError, LexicalError) as exc:
            shutil.rmtree(local, ignore_errors=True)
            raise LexicalError(f"unreadable lexical index ({exc})") from None

    @property
    def docs(self) -> int:
        return self._searcher.num_docs

    def terms(self, text: str) -> Terms:
        def unique(field: str) -> list[str]:
            return list(dict.fromkeys(cut(self._analyzers, field, text)))

        return Terms(unique("words"), unique("parts"), looks_like_a_name(text))

    def search(self, text: str, limit: int, *, fuzzy: bool = False,
               require_identifier: bool = True,
               languages: Sequence[str] = (), exclude_languages: Sequence[str] = (),
               paths: Sequence[str] | None = None, exclude_paths: Sequence[str] = ()
               ) -> list[tuple[str, float]]:
        """Row ids and BM25 scores, best first, of rows that hold a term of `text`.

        Filters are part of the query, so they apply before ranking. `paths` (when not None)
        is the set of files a hit may come from, `exclude_paths` files it may not (a few
        thousand terms cost tantivy tens of ms: pass the shorter list). A query that is one name (`readConfig`,
        `read_config`; Terms.identifier) with `require_identifier` matches that identifier
        only, not rows that merely share a piece.
        """
        query = self._match_query(self.terms(text), fuzzy, require_identifier)
        if query is None:
            return []
        query = self._filtered(query, languages, exclude_languages, paths, exclude_paths)
        result = self._searcher.search(query, limit)
        doc = self._searcher.doc
        return [(doc(address)["id"][0], float(score)) for score, address in result.hits]

    def _match_query(self, terms: Terms, fuzzy: bool, require_identifier: bool):
        import tantivy

        Query, Occur = tantivy.Query, tantivy.Occur
        schema = self._schema
        if not terms.words and not terms.parts:
            return None

        def word_query(word: str):
            if fuzzy and len(word) > FUZZY_MIN_LENGTH:
                return Query.fuzzy_term_query(schema, "words", word,
                                              distance=1 if len(word) < 8 else 2)
            return Query.term_query(schema, "words", word)

        definitions = [(Occur.Should, self._definition_query(word))
                       for word in terms.names if not fuzzy]
        if terms.identifier and require_identifier:
            return Query.boolean_query([(Occur.Must, word_query(terms.words[0])),
                                        *definitions])
        clauses = [(Occur.Should, word_query(word)) for word in terms.words]
        # Pieces widen a natural-language query (`config` finds `read_config`); they weigh
        # less than whole words, which say more.
        clauses += [(Occur.Should, Query.boost_query(Query.term_query(schema, "parts", part),
                                                     PART_WEIGHT))
                    for part in terms.parts]
        clauses += [(Occur.Should, Query.boost_query(Query.term_query(schema, "place", part),
                                                     PLACE_WEIGHT))
                    for part in terms.parts]
        return Query.boolean_query(clauses + definitions)

    def _definition_query(self, word: str):
        """Rows that define `word` ("class word", "def word", …), with a bonus above what
        one term can add to a row's BM25: (k1 + 1) · the largest idf, k1 = 1.2."""
        import tantivy

        Query, Occur = tantivy.Query, tantivy.Occur
        phrases = [(Occur.Should, Query.phrase_query(self._schema, "words", [keyword, word]))
                   for keyword in DEFINING_WORDS]
        bonus = 2.2 * math.log(1 + 2 * self.docs + 1)
        return Query.const_score_query(Query.boolean_query(phrases), bonus)

    def _filtered(self, query, languages, exclude_languages, paths, exclude_paths):
        import tantivy

        Query, Occur = tantivy.Query, tantivy.Occur
        schema = self._schema
        clauses = [(Occur.Must, query)]
        if languages:
            clauses.append((Occur.Must, Query.term_set_query(schema, "language",
                                                             list(languages))))
        if exclude_languages:
            clauses.append((Occur.MustNot, Query.term_set_query(schema, "language",
                                                                list(exclude_languages))))
        if paths is not None:
            clauses.append((Occur.Must, Query.term_set_query(schema, "path", list(paths))))
        if exclude_paths:
            clauses.append((Occur.MustNot, Query.term_set_query(schema, "path",
                                                                list(exclude_paths))))
        return query if len(clauses) == 1 else Query.boolean_query(clauses)

    def all_ids(self) -> list[str]:
        """The row id of every document (verify)."""
        import tantivy

        result = self._searcher.search(tantivy.Query.all_query(), max(1, self.docs))
        return [self._searcher.doc(address)["id"][0] for _, address in result.hits]

    def close(self) -> None:
        self._searcher = self._index = None
        if self._temporary:
            shutil.rmtree(self._dir, ignore_errors=True)
