"""Index: read the live snapshot of an output (a folder or a URL Beam's FileSystems reads),
and search it.

Reading never executes anything from the index (JSON and Parquet only), and a manifest that
names a shard outside its own snapshot folder is refused.

Example::

    index = Index.open("path/to/index")
    for hit in index.search("parse json config", k=5):
        print(hit["path"], hit["line_start"], hit["score"])
"""

from __future__ import annotations

import bisect
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import lexical
from ..embedders import Embedder, embedder_class, get_embedder
from ..errors import IndexReadError
from ..layout.columns import int_array, mask_of, numpy_of, string_array, vectors_of
from ..layout.schema import CURRENT_FILE, FILES_TABLE, FORMAT_VERSION, MANIFEST_FILE, SNAPSHOTS_DIR
from ..lexical import LexicalError, LexicalIndex
from ..source import storage
from . import ann
from .ann import AnnError, ApproximateIndex
from .ranking import (
    NAME_WEIGHT,
    QUESTION_WEIGHT,
    Piece,
    SearchError,
    SearchRequest,
    allowed_paths,
    file_text,
    fuse,
    relative,
    top_rows,
    whole_lines,
)

_SHARD_NAME = re.compile(r"^part-[0-9A-Za-z_-]+\.parquet$")
_SNAPSHOT_NAME = re.compile(r"^[0-9A-Za-z._-]+$")
VECTOR_CACHE = "_vectors.npy"


def shard_names(manifest: dict) -> list[str]:
    """The manifest's shard file names, refusing any that could leave the snapshot folder."""
    shards = manifest.get("shards", [])
    if not isinstance(shards, list):
        raise IndexReadError(f"manifest shards is not a list: {shards!r:.80}")
    names = []
    for shard in shards:
        name = shard.get("path") if isinstance(shard, dict) else None
        if not isinstance(name, str) or not _SHARD_NAME.match(name):
            raise IndexReadError(f"manifest names an invalid shard path {name!r}")
        names.append(name)
    return names


# The CLI's names for the options an index may not choose (flags.add_endpoint_flags).
_ENDPOINT_FLAGS = {"base_url": "--embedding-url", "model": "--embedding-model",
                   "api_key_env": "--api-key-env"}


class Index:
    """The live snapshot of an output folder."""

    def __init__(self, directory: str, manifest: dict, embedder_options: dict | None = None,
                 out: str | None = None):
        self.directory = directory
        self.manifest = manifest
        self.embedder_options = dict(embedder_options or {})
        self.out = out  # the output folder whose CURRENT named this snapshot, when known
        self.snapshot_id: str = manifest.get("snapshot_id", os.path.basename(directory))
        self.shards = shard_names(manifest)
        self.row_cache: RowGroupCache | None = None  # a resident reader sets one

    @classmethod
    def open(cls, out: str | os.PathLike, filesystem_flags: Sequence[str] = (),
             embedder_options: dict | None = None) -> Index:
        """The live snapshot of `out`. `filesystem_flags` are Beam's options for a remote
        filesystem (e.g. ["--s3_endpoint_url=…"]); they apply to this process's FileSystems.
        `embedder_options` are where a remote embedder sends queries, with which model and key
        (`base_url`, `model`, `api_key_env`): the searcher's, never the index's, whose copy
        must match (`Index.embedder`)."""
        if filesystem_flags:
            storage.use_options(filesystem_flags)
        out = os.fspath(out)
        current = storage.join(out, CURRENT_FILE)
        try:
            snapshot_id = storage.read_bytes(current).decode("utf-8").strip()
        except FileNotFoundError:
            raise IndexReadError(f"{out} holds no index (no {CURRENT_FILE} file)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexReadError(f"{current} is unreadable ({exc})") from None
        if not _SNAPSHOT_NAME.match(snapshot_id):
            raise IndexReadError(f"{current} names an invalid snapshot {snapshot_id!r}")
        directory = storage.join(out, SNAPSHOTS_DIR, snapshot_id)
        try:
            manifest = json.loads(storage.read_bytes(storage.join(directory, MANIFEST_FILE)))
        except (OSError, ValueError) as exc:
            raise IndexReadError(f"snapshot {snapshot_id}: unreadable manifest ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
            raise IndexReadError(f"snapshot {snapshot_id}: unsupported manifest format "
                             f"{manifest.get('format_version') if isinstance(manifest, dict) else manifest!r}")
        return cls(directory, manifest, embedder_options, out)

    @property
    def fingerprint(self) -> dict:
        return self.manifest["fingerprint"]

    @property
    def dim(self) -> int:
        return int(self.fingerprint["embedder"]["dim"])

    def shard_path(self, name: str) -> str:
        return storage.join(self.directory, name)

    def files_table(self) -> pa.Table:
        return storage.read_parquet(storage.join(self.directory, FILES_TABLE))

    @cached_property
    def embedder(self) -> Embedder:
        """The snapshot's own embedder, rebuilt from its fingerprint once: a second query of
        the same Index reuses it (a model is loaded once, not per query).

        The manifest chooses only what reaches neither the network nor the environment (the
        class's `index_config`); an endpoint, its model and the key's variable are the
        searcher's (`embedder_options`, else the embedder's defaults), and a mismatch with the
        index's copy is refused before any request."""
        spec = self.fingerprint["embedder"]
        stored = self.manifest.get("embedder_config") or {}
        if not isinstance(stored, dict):
            raise IndexReadError("manifest embedder_config is not a mapping")
        try:
            kind = embedder_class(spec["name"])
            given = {key: value for key, value in self.embedder_options.items()
                     if key in kind.user_config and value is not None}
            embedder = get_embedder(spec["name"], dim=int(spec["dim"]), **given,
                                    **{key: stored[key] for key in kind.index_config
                                       if key in stored})
        except ValueError as exc:
            raise IndexReadError(f"cannot rebuild the index's embedder: {exc}") from None
        mine = embedder.config()
        for key in kind.checked_config:
            if key in stored and stored[key] != mine.get(key):
                source = "given" if key in given else "the default"
                flag = _ENDPOINT_FLAGS.get(key, key)
                raise IndexReadError(
                    f"this index was embedded with {key} {stored[key]!r} (its manifest says), "
                    f"and this search would use {mine.get(key)!r} ({source}); an index does not "
                    f"choose where queries go: give {flag} yourself if you trust that value")
        if embedder.fingerprint() != spec:
            raise IndexReadError(f"this installation's {spec['name']} embedder "
                             f"({embedder.fingerprint()}) differs from the index's ({spec}); "
                             "re-index with --full")
        embedder.load()
        return embedder

    @cached_property
    def _rows(self) -> tuple[np.ndarray, pa.Table]:
        """All vectors as one contiguous float32 matrix, and the columns hits and filters use.

        The matrix is cached in the snapshot folder (`_vectors.npy`, memory-mapped on later
        opens) when the folder is writable; snapshots never change, so the cache stays valid.
        """
        metas = [storage.read_parquet(self.shard_path(name), columns=list(_META_COLUMNS))
                 for name in self.shards]
        counts = [m.num_rows for m in metas]
        shard_ids = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        rows = np.concatenate([np.arange(n, dtype=np.int64) for n in counts]) if counts else []
        meta = (pa.concat_tables(metas) if metas else pa.schema(
            [(name, _META_COLUMNS[name]) for name in _META_COLUMNS]).empty_table())
        meta = meta.append_column("shard", int_array(shard_ids))
        meta = meta.append_column("row", int_array(np.asarray(rows, np.int64)))
        # One chunk per column: Arrow's take over a chunked string column concatenates it first
        # (3 ms a take at 275k rows, several takes a query).
        return self._matrix(sum(counts)), meta.combine_chunks()

    def _matrix(self, total: int) -> np.ndarray:
        local = storage.is_local(self.directory)
        cache = os.path.join(self.directory, VECTOR_CACHE)
        try:
            matrix = np.load(cache, mmap_mode="r", allow_pickle=False) if local else None
            if matrix is not None and matrix.shape == (total, self.dim) \
                    and matrix.dtype == np.float32:
                return matrix
        except (OSError, ValueError):
            pass
        matrix = np.empty((total, self.dim), dtype=np.float32)
        offset = 0
        for name in self.shards:
            vectors = vectors_of(storage.read_parquet(
                self.shard_path(name), columns=["vector"])["vector"], self.dim)
            matrix[offset:offset + len(vectors)] = vectors
            offset += len(vectors)
        if local:  # a remote index is searched without a cache
            tmp = os.path.join(self.directory, f".{VECTOR_CACHE}.{os.getpid()}.tmp")
            try:
                with open(tmp, "wb") as fh:
                    np.save(fh, matrix, allow_pickle=False)
                os.replace(tmp, cache)
            except OSError:
                storage.delete(tmp)  # a read-only index is searched without a cache
        return matrix

    @cached_property
    def approximate(self) -> ApproximateIndex | None:
        """The snapshot's approximate vector index (ann.py), or None when it has none (a
        snapshot below `--ann-min-rows`, or an older one)."""
        entry = self.manifest.get("ann")
        if not ann.usable(entry):
            return None
        try:
            return ApproximateIndex.open(self.directory, entry, self._rows[1].num_rows)
        except AnnError as exc:
            raise IndexReadError(f"snapshot {self.snapshot_id}: {exc}") from None

    @cached_property
    def lexicon(self) -> LexicalIndex | None:
        """The snapshot's lexical index, or None when it has none (an older snapshot)."""
        entry = self.manifest.get("lexical")
        if not lexical.usable(entry):  # none, or another version's layout
            return None
        try:
            return LexicalIndex.open(self.directory, entry)
        except LexicalError as exc:
            raise IndexReadError(f"snapshot {self.snapshot_id}: {exc}") from None

    def search(self, text: str, k: int = 10, **options) -> list[dict]:
        """The k best rows for `text`, best first; `options` are SearchRequest's (mode,
        languages, exclude_languages, path_filters, exclude_paths, min_score, regex,
        case_sensitive, fuzzy, files_only). See ranking.py for the modes and their scores."""
        return self.search_request(SearchRequest(text, k, **options))

    def search_request(self, request: SearchRequest) -> list[dict]:
        """The hits of `request`. A reader that outlives its snapshot (superseded for longer
        than the prune grace, then pruned) follows CURRENT once and answers from the live
        snapshot."""
        try:
            return self.answer(request)
        except (FileNotFoundError, IndexReadError):
            if not self.follow_current():
                raise
        request.notes.clear()
        return self.answer(request)

    def file_text(self, path: str) -> tuple[str, str] | None:
        """A file's text and language as this snapshot's rows hold it (ranking.file_text),
        never read from SOURCE; None when the snapshot holds no rows of `path`."""
        paths, codes = self._path_codes
        found = pc.index(paths, pa.scalar(path, pa.string())).as_py()
        if found < 0:
            return None
        meta = self._rows[1]
        rows = np.flatnonzero(codes == found)
        places = list(zip((self.shards[i] for i in meta["shard"].take(rows).to_pylist()),
                          meta["row"].take(rows).to_pylist()))
        values = self._read_rows(places, ("char_start", "char_end", "line_start", "content"))
        pieces = [(Piece(start, end, text), line) for start, end, line, text in values.values()]
        return file_text(pieces), meta["language"][int(rows[0])].as_py()

    def follow_current(self) -> bool:
        """Become the snapshot CURRENT names now, if it is another; whether it was."""
        if self.out is None:
            return False
        try:
            live = Index.open(self.out, embedder_options=self.embedder_options)
        except IndexReadError:
            return False
        if live.snapshot_id == self.snapshot_id:
            return False
        self.__dict__ = live.__dict__  # its manifest, and none of this snapshot's caches
        return True

    def answer(self, request: SearchRequest) -> list[dict]:
        """The hits of `request` from this snapshot alone: FileNotFoundError once it is
        pruned. For a caller that follows CURRENT itself (serve's threads share one Index,
        which must not become another snapshot under a query in flight)."""
        if request.k < 1 or not self.shards:
            return []
        allowed, paths = self._filter(request)
        mode = request.mode
        if mode != "semantic" and self.lexicon is None:
            if mode == "fts":
                raise IndexReadError(f"snapshot {self.snapshot_id} has no lexical index (made "
                                     "by an older version); the next `beam-index index` adds one")
            request.notes.append("this snapshot has no lexical index (an older version made "
                                 "it): vector ranking only; the next run adds one")
            mode = "semantic"
        if mode == "semantic":
            semantic = self._semantic(request, allowed)
            return self._hits(request, [(row, max(score, 0.0)) for row, score in semantic],
                              {"semantic": semantic})
        if mode == "fts":
            lexical = (self._regex(request, allowed) if request.regex
                       else self._lexical(request, paths))
            return self._hits(request, relative(lexical), {"fts": lexical})
        semantic, lexical = self._semantic(request, allowed), self._lexical(request, paths)
        name = self.lexicon.terms(request.query).identifier
        if request.fusion == "rrf":
            weight = 0.0 if name else 0.5
        else:
            weight = NAME_WEIGHT if name else QUESTION_WEIGHT
        fused = fuse(relative(lexical), semantic, weight, request.fusion)
        return self._hits(request, fused, {"fts": lexical, "semantic": semantic}, ranks=True)

    def _filter(self, request: SearchRequest) -> tuple[np.ndarray | None, PathTerms | None]:
        """A mask of the rows the filters let through (None when there are no filters), and
        the files the path filters let through or keep out, whichever list is shorter (None
        when there are no path filters)."""
        if not request.filtered:
            return None, None
        languages, codes = self._language_codes
        mask = np.ones(len(codes), dtype=bool)
        if request.languages:
            mask &= mask_of(pc.is_in(languages, value_set=string_array(request.languages)))[codes]
        if request.exclude_languages:
            mask &= ~mask_of(pc.is_in(languages, value_set=string_array(
                request.exclude_languages)))[codes]
        names, codes = self._path_codes
        allowed = allowed_paths(names, request)
        if allowed is None:
            return mask, None
        mask &= allowed[codes]
        keep = 2 * np.count_nonzero(allowed) <= len(allowed)
        listed = np.flatnonzero(allowed if keep else ~allowed)
        return mask, PathTerms(names.take(int_array(listed)).to_pylist(), keep)

    @cached_property
    def _path_codes(self) -> tuple[pa.Array, np.ndarray]:
        """Each distinct path once, and each row's path as a position among them: filters
        match the 25k paths of a 275k-row index, not every row's."""
        return _distinct(self._rows[1]["path"])

    @cached_property
    def _language_codes(self) -> tuple[pa.Array, np.ndarray]:
        """As _path_codes, for languages: a language filter hashes a few names, not 275k
        strings (4 ms a query)."""
        return _distinct(self._rows[1]["language"])

    def _semantic(self, request: SearchRequest, allowed: np.ndarray | None):
        matrix, _ = self._rows
        query = self.embedder.embed([request.query])[0]
        n = (request.fetch if request.mode == "hybrid" or request.files_only else request.k)
        # A semantic hit's score is its cosine, so the minimum can prune before ranking; a
        # hybrid hit's is fused, and a row under the minimum here can still pass.
        least = request.min_score if request.mode == "semantic" and request.min_score else None
        graph = None if request.exact else self.approximate
        if graph is not None:
            return graph.rank(matrix, query, n, allowed, least)
        return top_rows(matrix, query, n, allowed, least)

    def _lexical(self, request: SearchRequest, paths: PathTerms | None):
        """BM25 ranking with the filters in the query (tantivy's clauses, not the row mask);
        a case-sensitive search pages through the case-blind ranking (the same scores) and
        keeps rows whose text has the term."""
        _, meta = self._rows
        want = request.fetch if request.mode == "hybrid" or request.files_only else request.k
        limit = want if not request.case_sensitive else max(4 * want, 200)
        needles = terms_in_text(request.query) if request.case_sensitive else None
        while True:
            found = self.lexicon.search(
                request.query, limit, fuzzy=request.fuzzy,
                languages=request.languages,
                exclude_languages=request.exclude_languages,
                paths=paths.paths if paths and paths.keep else None,
                exclude_paths=paths.paths if paths and not paths.keep else ())
            rows = self._rows_of([row_id for row_id, _ in found])
            ranked = [(row, score) for row, (_, score) in zip(rows, found) if row >= 0]
            if needles is not None:
                texts = self._texts(meta, [row for row, _ in ranked])
                ranked = [(row, score) for (row, score), text in zip(ranked, texts)
                          if any(needle in text for needle in needles)]
            if needles is None or len(ranked) >= want or len(found) < limit:
                return ranked[:want]
            limit *= 4

    def _regex(self, request: SearchRequest, allowed: np.ndarray | None):
        """Rows whose raw text matches the pattern (RE2 syntax), by number of matches."""
        counts = []
        for name in self.shards:
            content = storage.read_parquet(self.shard_path(name), columns=["content"])["content"]
            try:
                counts.append(numpy_of(pc.count_substring_regex(
                    content, request.query, ignore_case=not request.case_sensitive)))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SearchError(f"bad regular expression: {exc}") from None
        matches = np.concatenate(counts).astype(np.float64) if counts else np.zeros(0)
        if allowed is not None:
            matches = np.where(allowed, matches, 0)
        hits = np.flatnonzero(matches)
        order = hits[np.argsort(-matches[hits], kind="stable")]
        want = request.fetch if request.files_only else request.k
        return [(int(row), float(matches[row])) for row in order[:want]]

    def _rows_of(self, ids: list[str]) -> list[int]:
        """The global row numbers of row ids (-1 for an id the shards do not hold). The rows
        are found by hashing the few ids, not the index's: 7 ms against 130 ms at 275k rows."""
        if not ids:
            return []
        _, meta = self._rows
        rows = np.flatnonzero(mask_of(pc.is_in(meta["id"], value_set=string_array(ids))))
        where = dict(zip(meta["id"].take(int_array(rows)).to_pylist(), rows.tolist()))
        return [where.get(row_id, -1) for row_id in ids]

    def _texts(self, meta: pa.Table, rows: list[int]) -> list[str]:
        picked = meta.take(int_array(np.asarray(rows, np.int64)))
        places = list(zip((self.shards[i] for i in picked["shard"].to_pylist()),
                          picked["row"].to_pylist()))
        found = self._read_rows(places, ("content",))
        return [found[place][0] for place in places]

    def _hits(self, request: SearchRequest, ranked: list[tuple[int, float]],
              lists: dict[str, list[tuple[int, float]]], ranks: bool = False) -> list[dict]:
        """The hits of `ranked` (row, score in [0, 1]; best first) that reach the minimum
        score, at most k (one per file with files_only). Each hit keeps its own number in
        each of `lists` (the rankings its score came from, with their raw scores: cosine,
        BM25 or matches) as `<list>_score`, and with `ranks` its place in each."""
        _, meta = self._rows
        if request.min_score is not None:
            ranked = [(row, score) for row, score in ranked if score >= request.min_score]
        if request.files_only:
            first: dict[str, tuple[int, float]] = {}
            paths = meta["path"].take(int_array(np.asarray([r for r, _ in ranked], np.int64)))
            for item, path in zip(ranked, paths.to_pylist()):
                first.setdefault(path, item)
            ranked = list(first.values())
        ranked = ranked[:request.k]
        if not ranked:
            return []
        rows = [row for row, _ in ranked]
        picked = meta.take(int_array(np.asarray(rows, np.int64)))
        shards = [self.shards[i] for i in picked["shard"].to_pylist()]
        pieces = self._pieces(shards, picked["row"].to_pylist())
        places = {name: {row: (rank, float(score)) for rank, (row, score) in enumerate(found, 1)}
                  for name, found in lists.items()}
        hits = []
        for (row, score), path, start, end, language, (piece, snippet) in zip(
                ranked, picked["path"].to_pylist(), picked["line_start"].to_pylist(),
                picked["line_end"].to_pylist(), picked["language"].to_pylist(), pieces):
            hit = {"path": path, "line_start": start, "line_end": end, "score": float(score),
                   "language": language, "content": piece.text, "snippet": snippet,
                   "mode": request.mode}
            for name, where in places.items():
                hit[f"{name}_score"] = where[row][1] if row in where else None
            if ranks:  # issue 15
                hit["ranks"] = {name: where[row][0] if row in where else None
                                for name, where in places.items()}
            hits.append(hit)
        return hits

    def _pieces(self, shards: list[str], rows: list[int]) -> list[tuple[Piece, str]]:
        """Each row's chunk and its whole-line snippet, from the row and its neighbours in
        the shard (a shard holds whole files, in chunk order)."""
        places = list(zip(shards, rows))
        found = self._read_rows([(shard, row + step) for shard, row in places
                                 for step in (-1, 0, 1)], _PIECE_COLUMNS)

        def neighbour(path: str, place: tuple[str, int]) -> Piece | None:
            values = found.get(place)
            return Piece(*values[1:]) if values and values[0] == path else None

        out = []
        for shard, row in places:
            path, *values = found[(shard, row)]
            piece = Piece(*values)
            out.append((piece, whole_lines(piece, neighbour(path, (shard, row - 1)),
                                           neighbour(path, (shard, row + 1)))))
        return out

    def _read_rows(self, places: list[tuple[str, int]], columns: Sequence[str]) -> dict:
        """(shard, row) → that row's `columns` as a list, for the places that exist; each
        shard is opened once, and only the row groups that hold the rows are read."""
        by_shard: dict[str, set[int]] = {}
        for shard, row in places:
            by_shard.setdefault(shard, set()).add(row)
        found = {}
        for shard, wanted in by_shard.items():
            path = self.shard_path(shard)
            if self.row_cache is not None and storage.is_local(path) \
                    and set(columns) <= set(CACHED_COLUMNS):
                table, where = self.row_cache.rows(path, wanted, columns)
            else:
                table, where = storage.read_parquet_rows(path, wanted, columns)
            kept = list(where)
            picked = table.take(int_array(np.asarray([where[row] for row in kept], np.int64)))
            for row, *values in zip(kept, *(picked[c].to_pylist() for c in columns)):
                found[(shard, row)] = values
        return found

CACHED_COLUMNS = ("path", "char_start", "char_end", "line_start", "content")


class RowGroupCache:
    """Decoded row groups of local shards (the columns snippets and a file's text read), the
    least recently used dropped past `max_bytes`. For a resident reader (serve, mcp): a
    query then decodes no row group it has read before, where a one-off search would gain
    nothing. Thread-safe."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._groups: OrderedDict[tuple[str, int], pa.Table] = OrderedDict()
        self._starts: dict[str, list[int]] = {}  # each shard's first row of each group, then its rows
        self._bytes = 0
        self._lock = threading.Lock()

    def rows(self, path: str, rows: set[int], columns: Sequence[str]
             ) -> tuple[pa.Table, dict[int, int]]:
        """As storage.read_parquet_rows: the groups holding `rows`, and where each row is."""
        starts = self._starts.get(path)
        if starts is None:
            meta = pq.ParquetFile(path).metadata
            starts = [0]
            for group in range(meta.num_row_groups):
                starts.append(starts[-1] + meta.row_group(group).num_rows)
            self._starts[path] = starts
        groups = sorted({bisect.bisect_right(starts, row) - 1 for row in rows
                         if 0 <= row < starts[-1]})
        tables, where, read = [], {}, 0
        for group in groups:
            tables.append(self._group(path, group))
            where.update((row, read + row - starts[group]) for row in rows
                         if starts[group] <= row < starts[group + 1])
            read += starts[group + 1] - starts[group]
        if not tables:
            return pa.table({name: pa.array([], pa.string()) for name in columns}), {}
        return pa.concat_tables(tables).select(list(columns)), where

    def _group(self, path: str, group: int) -> pa.Table:
        key = (path, group)
        with self._lock:
            if key in self._groups:
                self._groups.move_to_end(key)
                return self._groups[key]
        table = pq.ParquetFile(path).read_row_group(group, columns=list(CACHED_COLUMNS))
        with self._lock:
            self._groups[key] = table
            self._bytes += table.nbytes
            while self._bytes > self.max_bytes and len(self._groups) > 1:
                _, dropped = self._groups.popitem(last=False)
                self._bytes -= dropped.nbytes
        return table


class PathTerms(NamedTuple):
    """The files a path filter lets through (`keep`), or those it keeps out."""

    paths: list[str]
    keep: bool


_META_COLUMNS = {"id": pa.string(), "path": pa.string(), "language": pa.string(),
                 "line_start": pa.int32(), "line_end": pa.int32()}
_PIECE_COLUMNS = ("path", "char_start", "char_end", "content")


def _distinct(column: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """A column's distinct values, and each row's value as a position among them."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    return encoded.dictionary, numpy_of(encoded.indices)


def terms_in_text(query: str) -> list[str]:
    """The words of a query as they must appear, case kept (a case-sensitive search)."""
    return list(dict.fromkeys(re.findall(r"[^\W\d]\w+", query))) or [query]
