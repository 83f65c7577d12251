"""The approximate vector index of a large snapshot: an HNSW graph kept by usearch.

Exact ranking scores every row: 96 ms a query at 1 M rows and 454 ms at 5 M on this project's
machine (benchmarks/search_scale.py), so past about 2 M rows a query would exceed 200 ms. A
snapshot of at least `DEFAULT_MIN_ROWS` rows (`--ann-min-rows`) therefore also holds
`vectors.usearch`: usearch's own file (a header, the vectors in float16 and the graph; nothing
in it is executed), and `vectors.keys.npy`, which row each key is: listed in the manifest
under `"ann"`. Smaller snapshots have none and rank exactly.

- Keys: a row's key is the first 16 hex digits of its id (ids are sha256-derived, schema.py)
  as an unsigned 64-bit integer, so a key names the same row in every snapshot and the graph
  can be carried forward. The keys file holds the snapshot's keys sorted, each with its row
  number (rows counted through the shards in the manifest's order, by name): a search finds
  its candidates' rows by binary search in a memory-mapped file instead of parsing every id.
  Two rows of one snapshot with the same key (odds of about 1 in 10^6 at 5 M rows) leave that
  snapshot without a graph: exact ranking, never a lost row.
- Re-index: the previous snapshot's graph is loaded, the keys of rows that are gone are
  removed, the new rows are added, and it is saved into the new snapshot. HNSW only marks
  removed nodes, so once removals since the last full build pass `REBUILD_SHARE` of the rows,
  the graph is built afresh.
- Search: the graph proposes `CANDIDATES` rows (or more), which are scored exactly against the
  float32 matrix, so scores are those of exact ranking and only the recall is approximate
  (benchmarks/search_scale.py measures it). Filters apply before ranking: when the filters
  keep at most `EXACT_ROWS` rows they are ranked exactly; otherwise the graph's candidates are
  over-fetched by the share the filters keep and filtered, and when too few are left the query
  falls back to exact ranking over the allowed rows.

Example::

    entry = build(staging, manifest_shards, dim=384, base=None, min_rows=1)
    graph = ApproximateIndex.open(snapshot_dir, entry, rows=entry["rows"])
    ranked = graph.rank(matrix, query, 10)
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import tempfile
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ..errors import IndexReadError
from ..layout.columns import vectors_of
from ..source import storage
from .ranking import top_rows

log = logging.getLogger(__name__)

ANN_FILE = "vectors.usearch"
KEYS_FILE = "vectors.keys.npy"
ENGINE = "usearch"
# Bump when keys or parameters change meaning: a graph of another layout is rebuilt.
LAYOUT = 1
DEFAULT_MIN_ROWS = 2_000_000
# Measured on README command 1's 292k rows (hashing vectors), recall of the exact top 10 with
# the candidates scored exactly: f16, connectivity 16, expansion 128 at build (47 s, 268 MB)
# recalls 0.90-0.94 at a search expansion of 128, 0.95-0.97 at 512 (2.3 ms a query), 0.97-0.99
# at 1,024 (4.2 ms) and 0.976 at 2,048 (8 ms); f32 with expansion 256 at build recalls 0.974
# at 512, but at twice the size and four times the build. Connectivity 32 recalled no more.
# On 1 M clustered synthetic rows, 1,024 recalls 1.000 and 128 0.70.
DTYPE = "f16"
METRIC = "ip"  # rows are unit vectors: inner product is cosine
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 1024
CANDIDATES = 100
# Exact ranking of kept rows costs ~0.6 us a row; over-fetching ~8.5 us per candidate asked
# (2 * CANDIDATES / the kept share): at 2-5 M rows they meet near 100,000 kept rows.
EXACT_ROWS = 100_000
REBUILD_SHARE = 0.25
_MAX_FETCH = 20_000
_FREE_KEY = np.uint64(2**64 - 1)  # usearch's marker of an empty slot


class AnnError(IndexReadError):
    """The approximate index cannot be read."""


def usable(entry: object) -> bool:
    """Whether a manifest's "ann" entry describes a graph this version reads."""
    return isinstance(entry, dict) and entry.get("engine") == ENGINE \
        and entry.get("layout") == LAYOUT and entry.get("file") == ANN_FILE \
        and entry.get("keys_file") == KEYS_FILE


def row_keys(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each row id's key: its first 16 hex digits as an unsigned 64-bit integer."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if len(ids) == 0:
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(ids.buffers()[1], np.int32)[ids.offset:ids.offset + len(ids) + 1]
    if ids.null_count or np.any(np.diff(offsets) != 32):
        raise ValueError("row ids are not 32 hex digits each")
    data = np.frombuffer(ids.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    digits = data.reshape(-1, 32)[:, :16].tobytes().decode("ascii")
    return np.frombuffer(bytes.fromhex(digits), dtype=">u8").astype(np.uint64)


def distinct(keys: np.ndarray) -> bool:
    """Whether every key is different (and none is usearch's empty-slot marker)."""
    return len(np.unique(keys)) == len(keys) and not np.any(keys == _FREE_KEY)


def key_table(keys: np.ndarray) -> np.ndarray:
    """The keys file's content: the keys sorted, and under them each one's row number (two
    contiguous lines: a binary search reads a few pages of the first)."""
    order = np.argsort(keys, kind="stable")
    return np.stack([keys[order], order.astype(np.uint64)])


def new_graph(dim: int):
    from usearch.index import Index as Hnsw

    return Hnsw(ndim=dim, metric=METRIC, dtype=DTYPE, connectivity=CONNECTIVITY,
                expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)


def _restore(snapshot_dir: str, view: bool):
    from usearch.index import Index as Hnsw

    path = storage.join(snapshot_dir, ANN_FILE)
    try:
        if storage.is_local(path):
            graph = Hnsw.restore(path, view=view)
        else:  # usearch reads a buffer as well as a file
            graph = Hnsw.restore(storage.read_bytes(path))
    except (OSError, RuntimeError, ValueError) as exc:
        raise AnnError(f"{path}: {exc}") from None
    if graph is None:
        raise AnnError(f"{path}: not a usearch index")
    return graph


def read_key_table(snapshot_dir: str) -> np.ndarray:
    """A snapshot's keys file, memory-mapped when local."""
    path = storage.join(snapshot_dir, KEYS_FILE)
    try:
        if storage.is_local(path):
            table = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            table = np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise AnnError(f"{path}: {exc}") from None
    if table.dtype != np.uint64 or table.ndim != 2 or table.shape[0] != 2:
        raise AnnError(f"{path}: not a table of keys and rows")
    return table


def build(staging: str, shards: Sequence[dict], dim: int, base: tuple[str, dict] | None,
          min_rows: int) -> dict | None:
    """Write the graph of exactly the `shards` (the manifest's entries, files in `staging`)
    into `staging`; its manifest entry, or None when the snapshot has fewer than `min_rows`
    rows or two rows share a key. `base` is the previous snapshot's folder and entry: its
    graph is updated rather than rebuilt."""
    total = sum(int(shard["rows"]) for shard in shards)
    if total < min_rows or total == 0:
        return None
    names = sorted(shard["path"] for shard in shards)  # the manifest's order: row numbers
    keys = [row_keys(storage.read_parquet(storage.join(staging, name), columns=["id"])["id"])
            for name in names]
    every = np.concatenate(keys)
    if not distinct(every):
        log.warning("two rows share an approximate-index key: this snapshot ranks exactly")
        return None
    graph, removed = None, 0
    if base is not None and usable(base[1]) and int(base[1].get("dim", -1)) == dim \
            and _unaltered(base):
        graph = _restore(base[0], view=False)
        gone = np.setdiff1d(np.asarray(graph.keys, dtype=np.uint64), every)
        removed = int(base[1].get("removed", 0)) + len(gone)
        if removed > REBUILD_SHARE * total:
            graph, removed = None, 0
        elif len(gone):
            graph.remove(gone)
    added = 0
    if graph is None:
        graph = new_graph(dim)
    for name, shard_keys in zip(names, keys):
        missing = ~np.asarray(graph.contains(shard_keys), dtype=bool) if len(graph) \
            else np.ones(len(shard_keys), bool)
        if not missing.any():
            continue
        column = storage.read_parquet(storage.join(staging, name), columns=["vector"])["vector"]
        graph.add(shard_keys[missing], vectors_of(column, dim)[missing])
        added += int(np.count_nonzero(missing))
    if len(graph) != total:
        raise AnnError(f"approximate index holds {len(graph)} rows, the snapshot {total}")
    target, keys_target = storage.join(staging, ANN_FILE), storage.join(staging, KEYS_FILE)
    buffer = io.BytesIO()
    np.save(buffer, key_table(every), allow_pickle=False)
    storage.write_bytes(keys_target, buffer.getvalue())
    if storage.is_local(target):
        graph.save(target)
        digest = storage.sha256(target)
    else:
        with tempfile.TemporaryDirectory(prefix="beam-ann-") as tmp:
            local = os.path.join(tmp, ANN_FILE)
            graph.save(local)
            digest = storage.sha256(local)
            with open(local, "rb") as fh:
                storage.write_bytes(target, fh.read())
    return {"engine": ENGINE, "layout": LAYOUT, "file": ANN_FILE,
            "bytes": storage.size(target), "sha256": digest, "keys_file": KEYS_FILE,
            "keys_bytes": storage.size(keys_target),
            "keys_sha256": hashlib.sha256(buffer.getbuffer()).hexdigest(),
            "rows": total, "dim": dim, "dtype": DTYPE,
            "metric": METRIC, "connectivity": CONNECTIVITY, "expansion_add": EXPANSION_ADD,
            "expansion_search": EXPANSION_SEARCH, "added": added, "removed": removed}


def _unaltered(base: tuple[str, dict]) -> bool:
    """Whether the base snapshot's graph has the sha256 its manifest records (or records
    none); an altered one is built afresh rather than carried into the next snapshot."""
    digest = base[1].get("sha256")
    path = storage.join(base[0], ANN_FILE)
    if digest and storage.sha256(path) != digest:
        log.warning("%s differs from the sha256 its manifest records: the approximate index "
                    "is built afresh", path)
        return False
    return True


class ApproximateIndex:
    """A snapshot's graph, and where each of its keys is among the snapshot's rows."""

    def __init__(self, graph, table: np.ndarray, expansion_search: int = EXPANSION_SEARCH):
        self.graph = graph
        self._sorted, self._order = table[0], table[1]
        self.expansion_search = expansion_search

    @classmethod
    def open(cls, snapshot_dir: str, entry: dict, rows: int) -> ApproximateIndex:
        """The graph of a snapshot of `rows` rows (memory-mapped, with its keys file, when
        the snapshot is a local folder)."""
        graph = _restore(snapshot_dir, view=True)
        table = read_key_table(snapshot_dir)
        if len(graph) != rows or table.shape != (2, rows):
            raise AnnError(f"approximate index holds {len(graph)} rows and {table.shape[1]} keys, "
                           f"the snapshot {rows} rows")
        return cls(graph, table, int(entry.get("expansion_search", EXPANSION_SEARCH)))

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """The row number of each key (-1 for a key no row has)."""
        at = np.minimum(np.searchsorted(self._sorted, keys), max(len(self._sorted) - 1, 0))
        found = self._sorted[at] == keys if len(self._sorted) else np.zeros(len(keys), bool)
        return np.where(found, self._order[at].astype(np.int64), -1)

    def candidates(self, query: np.ndarray, count: int) -> np.ndarray:
        """About the `count` rows nearest to `query`, as row numbers."""
        count = min(count, len(self.graph))
        self.graph.expansion_search = max(self.expansion_search, count)
        matches = self.graph.search(query, count)
        rows = self.rows_of(np.asarray(matches.keys, dtype=np.uint64))
        return rows[rows >= 0]

    def rank(self, matrix: np.ndarray, query: np.ndarray, n: int,
             allowed: np.ndarray | None = None, min_score: float | None = None
             ) -> list[tuple[int, float]]:
        """What `search.top_rows` returns, from the graph's candidates scored exactly: the
        `n` best allowed rows at or above `min_score`, as (row, score), best first."""
        if allowed is None:
            rows = np.sort(self.candidates(query, max(n, CANDIDATES)))
            return _best(rows, matrix[rows] @ query, n, min_score)
        kept = int(np.count_nonzero(allowed))
        if kept <= EXACT_ROWS:
            rows = np.flatnonzero(allowed)
            return _best(rows, matrix[rows] @ query, n, min_score)
        share = kept / len(allowed)
        count = min(_MAX_FETCH, math.ceil(2 * max(n, CANDIDATES) / share))
        rows = np.sort(self.candidates(query, count))
        rows = rows[allowed[rows]]
        if len(rows) >= n:
            return _best(rows, matrix[rows] @ query, n, min_score)
        return top_rows(matrix, query, n, allowed, min_score)


def _best(rows: np.ndarray, scores: np.ndarray, n: int, min_score: float | None
          ) -> list[tuple[int, float]]:
    """The n best of `rows` by `scores`, ties in row order. Callers pass rows in ascending
    order: a memory-mapped matrix is then read front to back."""
    if min_score is not None:
        keep = scores >= min_score
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))[:n]
    return [(int(rows[i]), float(scores[i])) for i in order]
