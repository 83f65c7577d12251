"""The lexical index of a snapshot: BM25 over code-aware terms, kept by tantivy.

Beside its shards, a snapshot holds `lexical/`: tantivy's own index files (`meta.json` and
segment files; plain files, nothing in them is executed), listed in the manifest under
`"lexical"`. One document per row:

- `id` (stored): the row's id, which joins a hit to its row;
- `path`, `language`: whole values, for filters and for deleting a file's documents;
- `shard`: the staged shard the row came from, so rows of a shard that is not committed (a
  retried bundle's) can be dropped (absent on documents indexed from the chunker, lexfeed.py);
- `words`: runs of word characters (letters, digits, `_`) but single ASCII ones, whole and
  lowercased (`read_config`, `readconfig`, `404`); see `word_text`;
- `parts`: the pieces of identifiers, split at snake_case and camelCase (`readConfig` →
  `read`, `config`), lowercased; camelCase is split where every piece is a known sub-word
  (see CODE_WORDS), else the identifier stays whole;
- `place`: the pieces of the file's path.

Tokenising runs in tantivy's Rust analyzers, at index time and for queries alike (`cut`), so a
query term is cut exactly as the content was. Case is not indexed: a case-sensitive search checks
the candidates' text.

A re-index carries the index forward instead of rebuilding it: the previous snapshot's files
are copied, the documents of files whose rows are not carried are deleted, the new rows are
added, and tantivy merges segments as it sees fit. BM25's statistics are the index's own.

Example::

    with LexicalBuilder() as builder:
        builder.add_shard("staging/part-1.parquet", "part-1.parquet")
        entry = builder.save_to("snapshots/X")  # lexical/… written through storage
    lexicon = LexicalIndex.open("snapshots/X", manifest["lexical"])
    for row_id, score in lexicon.search("read config", 10):
        ...
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Self

import pyarrow as pa
import pyarrow.parquet as pq

from . import storage
from .language import detect_language
from .schema import chunk_id

LEXICAL_DIR = "lexical"
ENGINE = "tantivy"
# Bump when fields or analyzers change: an index of another layout is rebuilt, not reused.
LAYOUT = 5
# Words: the text with every non-word character made a space (word_text), then tantivy's
# whitespace tokenizer. On the standard library's chunks that costs 0.65 s of CPU where
# tantivy's regex tokenizer (`[^\W\d]\w+`, layout 4) cost 2.1 s, whatever the pattern:
# its cost is per token, not per pattern.
_ASCII_WORDS = bytes(byte if chr(byte).isalnum() or chr(byte) == "_" else ord(" ")
                     for byte in range(128)) + bytes(range(128, 256))
_NON_WORD = re.compile(r"\W+")
# Single characters (`i`, `x`, `0`) are no search anyone makes, and among the most frequent
# terms of code.
_SINGLES = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789_")
# Pieces: tantivy's simple tokenizer cuts at every non-alphanumeric character (snake_case,
# dotted names), then a lowercased word made only of known sub-words is split into them
# (readconfigfile → read, config, file). A regex tokenizer that splits at case changes cost
# twice the whole index build (95 MB of code: 15.2 s against 9.6 s); the known sub-words are
# the pieces of camelCase and snake_case identifiers seen at least 30 times in the standard
# library and its site-packages, 3 letters or more (benchmarks/code_words.py makes the list).
CODE_WORDS = "code_words.txt"
_LONGEST_TERM = 100  # longer "words" are hashes and blobs, no one searches them
ROWS_COLUMNS = ["id", "path", "language", "content"]
_WRITER_HEAP = 128 << 20
PART_WEIGHT = 0.5
PLACE_WEIGHT = 0.5
# A row that defines a name the query asks for ("class Name", "def name", …) outranks the
# many rows that only use it.
# Words that also start prose or usages ("type", "const", "object") are left out: in
# docstrings ":type x: Name" would pass for a definition.
DEFINING_WORDS = ("class", "def", "function", "func", "fn", "struct", "interface", "trait",
                  "enum")
FUZZY_MIN_LENGTH = 3  # shorter words have too many neighbours one edit away


class LexicalError(Exception):
    """The lexical index is missing, unreadable or of another layout."""


def _analyzers():
    import tantivy

    def analyzer(tokenizer, *filters):
        builder = tantivy.TextAnalyzerBuilder(tokenizer)
        for filter_ in (tantivy.Filter.remove_long(_LONGEST_TERM), tantivy.Filter.lowercase(),
                        *filters):
            builder = builder.filter(filter_)
        return builder.build()

    return {"words": analyzer(tantivy.Tokenizer.whitespace(),
                              tantivy.Filter.custom_stopword(_SINGLES)),
            "parts": analyzer(tantivy.Tokenizer.simple(),
                              tantivy.Filter.split_compound(code_words()))}


def word_text(text: str) -> str:
    """`text` as the `words` field is given it: every character that is not a word character
    (Unicode letter, digit or `_`) becomes a space. ASCII text (most code) takes a byte
    table; the rest a regex."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORDS).decode("ascii")
    return _NON_WORD.sub(" ", text)


def cut(analyzers: dict, field: str, text: str) -> list[str]:
    """The terms of `text` in a field, as the index holds them."""
    return analyzers[field].analyze(word_text(text) if field == "words" else text)


@functools.cache
def code_words() -> list[str]:
    """The sub-words camelCase identifiers are split into (data/code_words.txt)."""
    text = resources.files("beam_pipeline").joinpath("data", CODE_WORDS).read_text("utf-8")
    return text.split()


def _schema():
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_text_field("path", stored=False, tokenizer_name="raw")
    builder.add_text_field("language", stored=False, tokenizer_name="raw")
    builder.add_text_field("shard", stored=False, tokenizer_name="raw")
    # Positions for `words` only: phrases find definitions ("class name") at +40 % of the
    # field's size and no measurable time; pieces need frequencies alone.
    builder.add_text_field("words", stored=False, tokenizer_name="code_words",
                           index_option="position")
    builder.add_text_field("parts", stored=False, tokenizer_name="code_parts",
                           index_option="freq")
    # The pieces of the file's path: a file named for what it does (parquetio.py, retry.py)
    # answers a question that names it.
    builder.add_text_field("place", stored=False, tokenizer_name="code_parts",
                           index_option="freq")
    return builder.build()


def _open(directory: str, create: bool):
    import tantivy

    index = tantivy.Index(_schema(), path=directory, reuse=not create)
    for name, analyzer in _analyzers().items():
        index.register_tokenizer(f"code_{name}", analyzer)
    return index


def manifest_entry(files: list[dict], docs: int) -> dict:
    return {"engine": ENGINE, "layout": LAYOUT, "docs": docs, "files": files}


def usable(entry) -> bool:
    """Whether a manifest's "lexical" entry is an index this installation reads."""
    return (isinstance(entry, dict) and entry.get("engine") == ENGINE
            and entry.get("layout") == LAYOUT and isinstance(entry.get("files"), list))


def file_names(entry: dict) -> list[str]:
    """The entry's file names, refusing any that could leave the lexical folder."""
    names = []
    for item in entry.get("files", []):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name or "/" in name or "\\" in name \
                or name in (".", "..") or "\x00" in name:
            raise LexicalError(f"manifest names an invalid lexical file {name!r}")
        names.append(name)
    return names


class LexicalBuilder:
    """A lexical index being written in a local scratch folder, then saved into a snapshot.

    `base` is a previous snapshot's folder and its manifest entry: its index is copied and
    updated rather than rebuilt.
    """

    def __init__(self, base: tuple[str, dict] | None = None):
        self._dir = tempfile.mkdtemp(prefix="beam-index-lexical-")
        if base is not None:
            _fetch(base[0], base[1], self._dir)
        self._index = _open(self._dir, create=base is None)
        self._writer = self._index.writer(heap_size=_WRITER_HEAP,
                                          num_threads=min(4, os.cpu_count() or 1))
        self.added = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def delete_paths(self, paths: Iterable[str]) -> None:
        """Drop every document of these files."""
        for path in paths:
            self._writer.delete_documents_by_term("path", path)

    def add_rows(self, table: pa.Table | pa.RecordBatch, shard: str) -> None:
        """One document per row of a table with columns id, path, language, content."""
        self._add(zip(*(table.column(name).to_pylist() for name in ROWS_COLUMNS)), shard=shard)

    def add_chunks(self, path: str, digest: str, chunks: Sequence[tuple[int, str]]) -> None:
        """The documents of one file's chunks `(index, text)`, whose content hash is `digest`:
        the rows its shard will hold (lexfeed.py), without their shard's name."""
        language = detect_language(path)
        self._add((chunk_id(path, digest, index), path, language, text)
                  for index, text in chunks)

    def _add(self, rows: Iterable[tuple[str, str, str, str]], **shard: str) -> None:
        """One document per (row id, path, language, content)."""
        import tantivy

        add, document, added = self._writer.add_document, tantivy.Document, 0
        for row_id, path, language, content in rows:
            add(document(id=row_id, path=path, language=language, words=word_text(content),
                         parts=content, place=path, **shard))
            added += 1
        self.added += added

    def add_shard(self, path: str, name: str, only: set[str] | None = None) -> None:
        """The rows of one shard (of the files in `only`, when given), a row group at a time
        (a shard's text is never all held)."""
        import pyarrow.compute as pc

        wanted = None if only is None else pa.array(sorted(only), pa.string())
        with storage.open_read(path) as fh:
            reader = pq.ParquetFile(fh)
            for group in range(reader.num_row_groups):
                rows = reader.read_row_group(group, columns=ROWS_COLUMNS)
                if wanted is not None:
                    rows = rows.filter(pc.is_in(rows.column("path"), value_set=wanted))
                self.add_rows(rows, name)

    def drop_shards(self, names: Iterable[str]) -> None:
        """Drop the documents added from these shards."""
        for name in names:
            self._writer.delete_documents_by_term("shard", name)

    @property
    def directory(self) -> str:
        return self._dir

    def save_to(self, snapshot_dir: str) -> dict:
        """Commit, then write the index files into `snapshot_dir`/lexical/; the manifest entry."""
        return export(self._dir, self.commit(), snapshot_dir)

    def commit(self) -> int:
        """Commit what was added and deleted, merge, drop unused files; the document count.
        Nothing can be added after."""
        self._writer.commit()
        self._writer.wait_merging_threads()
        self._index.reload()
        docs = self._index.searcher().num_docs
        self._writer = None
        self._garbage_collect()
        return docs

    def _garbage_collect(self) -> None:
        # Files of merged-away segments stay until a writer collects them; a fresh writer
        # on the committed index does.
        writer = self._index.writer(heap_size=15_000_000, num_threads=1)
        writer.garbage_collect_files()
        writer.wait_merging_threads()

    def close(self) -> None:
        self._writer = self._index = None
        shutil.rmtree(self._dir, ignore_errors=True)


def export(folder: str, docs: int, snapshot_dir: str) -> dict:
    """A committed index's files (`folder`, local) into `snapshot_dir`/lexical/; the manifest
    entry."""
    files = []
    for name in sorted(os.listdir(folder)):
        source = os.path.join(folder, name)
        if not os.path.isfile(source) or name.startswith("."):
            continue  # tantivy's lock files
        target = storage.join(snapshot_dir, LEXICAL_DIR, name)
        if storage.is_local(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(source, target)
        else:
            with open(source, "rb") as fh:
                storage.write_bytes(target, fh.read())
        files.append({"name": name, "bytes": os.path.getsize(source),
                      "sha256": storage.sha256(source)})
    return manifest_entry(files, docs)


_SHARD_NAME = re.compile(r"^part-[0-9A-Za-z_-]+\.parquet$")
# How often the staging folder is listed for new shards: a local listing costs nothing, so a
# shard written as the pipeline ends is tokenised while Beam finishes rather than after it
# (a remote embedder's run of 10,852 chunks: 1.42-1.43x its latency limit against 1.47-1.53x
# at 0.5 s); an object store's listing is a request.
_POLL_LOCAL_S = 0.1
_POLL_STORE_S = 0.5


class ShardFollower:
    """Adds the pipeline's shards to a LexicalBuilder as they appear in the staging folder.

    Shards are renamed into place whole (write.py), so a listed shard is complete. The
    lexical index is built while the pipeline still assembles and writes (tantivy tokenises
    on its own threads, without the GIL) instead of after it. Names passed to `claim` (rows
    carried from a snapshot whose index already holds them) are skipped; `finish` adds what
    the last listing missed and drops the shards that were not committed.

    Example::

        follower = ShardFollower(builder, staging).start()
        ...                                     # the pipeline runs
        follower.finish(staged_names)
    """

    def __init__(self, builder: LexicalBuilder, staging: str):
        self.builder = builder
        self.staging = staging
        self._claimed: set[str] = set()
        self._added: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one shard at a time into the builder
        self._thread = threading.Thread(target=self._follow, name="lexical", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> ShardFollower:
        self._thread.start()
        return self

    def claim(self, name: str) -> None:
        """A shard that must not be added (call before it exists)."""
        self._claimed.add(name)

    def _follow(self) -> None:
        try:
            interval = _POLL_LOCAL_S if storage.is_local(self.staging) else _POLL_STORE_S
            while not self._stop.wait(interval):
                self._add_new(None)
        except Exception as exc:  # noqa: BLE001 - re-raised by finish(), in the caller
            self._error = exc

    def _add_new(self, only: set[str] | None) -> None:
        names = [name for name in storage.list_names(self.staging) if _SHARD_NAME.match(name)]
        for name in names:
            if self._stop.is_set() and only is None:
                return
            with self._lock:
                if name in self._added or name in self._claimed or \
                        (only is not None and name not in only):
                    continue
                self.builder.add_shard(storage.join(self.staging, name), name)
                self._added.add(name)

    def finish(self, committed: set[str]) -> None:
        """Stop following; the builder then holds exactly the `committed` shards' rows."""
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._add_new(committed)
        missing = committed - self._added - self._claimed
        if missing:
            raise LexicalError(f"staged shards not found for the lexical index: "
                               f"{sorted(missing)[:3]}")
        self.builder.drop_shards(self._added - committed)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _fetch(snapshot_dir: str, entry: dict, target: str) -> None:
    """Copy a snapshot's lexical files into a local folder."""
    for name in file_names(entry):
        source = storage.join(snapshot_dir, LEXICAL_DIR, name)
        if storage.is_local(source):
            shutil.copyfile(source, os.path.join(target, name))
        else:
            with open(os.path.join(target, name), "wb") as fh:
                fh.write(storage.read_bytes(source))


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
        self._index = _open(directory, create=False)
        self._searcher = self._index.searcher()
        self._analyzers = _analyzers()
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
            _fetch(snapshot_dir, entry, local)
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
