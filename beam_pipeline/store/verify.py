"""verify: check the live snapshot against its manifest (and optionally against the source).

Every file of a snapshot is named in its manifest with its size and sha256; verify recomputes
each hash (`quick=True` compares sizes only, as versions before hashes did), then checks what
the files hold: rows against files.parquet, one lexical document and one graph key per row,
and a search's vector cache (`_vectors.npy`) against the shards' vectors.

Example::

    problems = verify_index(Path("index"))
    assert problems == []
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import lexical
from ..layout.columns import vectors_of
from ..layout.schema import FILES_TABLE, INDEXED, STALE, chunk_id, row_schema
from ..search import ann
from ..search.reader import VECTOR_CACHE, Index, IndexReadError
from ..source import storage
from ..source.discover import DEFAULT_MAX_FILE_SIZE, iter_source_files


class Verdict(NamedTuple):
    """What verify found: problems (the index is not sound when there is one) and notes
    (what it could not check, e.g. a snapshot older than content hashes)."""

    problems: list[str]
    notes: list[str]


def verify_index(out: str | Path, source: str | Path | None = None,
                 max_file_size: int = DEFAULT_MAX_FILE_SIZE, quick: bool = False) -> list[str]:
    """Every problem found, as one line each; an empty list means the index is sound."""
    return check_index(out, source, max_file_size, quick).problems


def check_index(out: str | Path, source: str | Path | None = None,
                max_file_size: int = DEFAULT_MAX_FILE_SIZE, quick: bool = False) -> Verdict:
    """Check the live snapshot of `out`.

    Args:
        out: the index folder or URL.
        source: the tree it was made from, to report files added, changed or gone since.
        max_file_size: the index run's limit (files above it are not expected in the index).
        quick: compare each file's size with the manifest's, not its sha256.
    """
    try:
        index = Index.open(out)
    except IndexReadError as exc:
        return Verdict([str(exc)], [])
    content = _Files(index.directory, quick)
    try:
        dim = index.dim
        expected_schema = row_schema(dim)
    except (KeyError, TypeError, ValueError) as exc:
        return Verdict([f"manifest fingerprint is malformed: {exc!r}"], [])
    manifest = index.manifest
    problems = content.check(FILES_TABLE, FILES_TABLE, manifest.get("files_table_bytes"),
                            manifest.get("files_table_sha256"))
    if problems:
        return Verdict(problems, content.notes())
    try:
        files = index.files_table()
    except (OSError, pa.ArrowException) as exc:
        return Verdict([f"files.parquet unreadable: {exc}"], content.notes())

    tables = []
    for shard in manifest["shards"]:
        name = shard["path"]
        # An altered shard that still reads is checked on: what its rows now say is news.
        found, data = content.read(name, f"shard {name}", shard.get("bytes"),
                                   shard.get("sha256"))
        problems += found
        try:
            table = (pq.ParquetFile(pa.BufferReader(data)).read() if data is not None
                     else storage.read_parquet(index.shard_path(name)))
        except (OSError, pa.ArrowException) as exc:
            if not found:
                problems.append(f"shard {name}: unreadable ({_first_line(exc)})")
            continue
        if table.num_rows != shard.get("rows"):
            problems.append(f"shard {name}: {table.num_rows} rows, manifest says "
                            f"{shard.get('rows')}")
        if not table.schema.equals(expected_schema, check_metadata=False):
            problems.append(f"shard {name}: schema differs from schema version "
                            f"{manifest.get('schema_version')} with dim {dim}")
            continue
        tables.append(table)
    rows = pa.concat_tables(tables) if tables else expected_schema.empty_table()
    counts = manifest.get("counts")
    manifest_rows = counts.get("rows") if isinstance(counts, dict) else None
    whole = len(tables) == len(index.shards)
    if manifest_rows is not None and sum(t.num_rows for t in tables) != manifest_rows and whole:
        problems.append(f"{rows.num_rows} rows in shards, manifest counts {manifest_rows}")
    problems += _check_rows(rows, files)
    if whole:
        problems += _check_vector_cache(index, rows, dim)
    if "lexical" in manifest:
        problems += _check_lexical(index, rows, content)
    if "ann" in manifest:
        problems += _check_ann(index, rows, content)
    if source is not None:
        problems += _check_source(files, source, max_file_size)
    return Verdict(problems, content.notes())


class _Files:
    """Each file of the snapshot against the size and sha256 its manifest records."""

    def __init__(self, directory: str, quick: bool):
        self.directory, self.quick = directory, quick
        self.unhashed: list[str] = []

    def check(self, name: str, label: str, size, digest) -> list[str]:
        """The file's problem, if any, as a one-item list; `name` is relative to the
        snapshot folder, `label` how a problem names it."""
        return self.read(name, label, size, digest, keep=False)[0]

    def read(self, name: str, label: str, size, digest, keep: bool = True
             ) -> tuple[list[str], bytes | None]:
        """As `check`, and the bytes it hashed when `keep` (None when it hashed none): a file
        that verify reads whole next (a shard) is read once, on an object store one download."""
        path = storage.join(self.directory, name)
        try:
            actual = storage.size(path)
        except OSError:
            return [f"{label} is missing"], None
        if size is not None and actual != size:
            return [f"{label}: {actual} bytes, manifest says {size}"], None
        if self.quick:
            return [], None
        if not digest:
            self.unhashed.append(label)
            return [], None
        data = storage.read_bytes(path) if keep else None
        found = hashlib.sha256(data).hexdigest() if keep else storage.sha256(path)
        if found != digest:
            return [f"{label}: content differs from the sha256 in the manifest "
                    + "(altered or corrupt)"], data
        return [], data

    def notes(self) -> list[str]:
        if self.quick:
            return ["quick: file sizes compared with the manifest, not their sha256"]
        if self.unhashed:
            return [f"{len(self.unhashed)} file(s) have no sha256 in the manifest (made by an "
                    + f"older version; sizes compared only), e.g. {self.unhashed[0]}; the next "
                    + "snapshot records them"]
        return []


def _check_vector_cache(index: Index, rows: pa.Table, dim: int) -> list[str]:
    """A search's vector cache holds the shards' vectors. It is written after the commit, so
    no manifest can hash it; a cache of another shape is ignored by searches (and rewritten),
    one of this shape is used as it is, so its content is compared."""
    path = os.path.join(index.directory, VECTOR_CACHE)
    if not storage.is_local(index.directory) or not os.path.isfile(path):
        return []
    try:
        cached = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return []
    if cached.shape != (rows.num_rows, dim) or cached.dtype != np.float32:
        return []
    vectors = vectors_of(rows["vector"], dim) if rows.num_rows else np.zeros((0, dim))
    if not np.array_equal(cached, vectors):
        return [f"{VECTOR_CACHE}: differs from the shards' vectors (searches read it: delete "
                + "it and the next search writes it again)"]
    return []


def _check_lexical(index: Index, rows: pa.Table, content: _Files) -> list[str]:
    """The lexical index's files are those the manifest lists, and it holds one document
    per row, by row id."""
    entry = index.manifest["lexical"]
    if not lexical.usable(entry):
        return [f"lexical index: not one this version reads ({str(entry)[:80]})"]
    problems = []
    try:
        names = lexical.file_names(entry)
    except lexical.LexicalError as exc:
        return [f"lexical index: {exc}"]
    for name, item in zip(names, entry["files"]):
        problems += content.check(f"{lexical.LEXICAL_DIR}/{name}", f"lexical index: {name}",
                                 item.get("bytes"), item.get("sha256"))
    if problems:
        return problems
    try:
        ids = index.lexicon.all_ids()
    except (IndexReadError, lexical.LexicalError, ValueError, OSError) as exc:
        return [f"lexical index: unreadable ({_first_line(exc)})"]
    expected = set(rows["id"].to_pylist())
    if len(ids) != len(set(ids)):
        problems.append(f"lexical index: {len(ids) - len(set(ids))} duplicated documents")
    missing, extra = expected - set(ids), set(ids) - expected
    if missing or extra:
        problems.append(f"lexical index: {len(missing)} rows without a document, "
                        f"{len(extra)} documents without a row")
    return problems


def _check_ann(index: Index, rows: pa.Table, content: _Files) -> list[str]:
    """The approximate index's files are the manifest's, and its graph holds exactly the rows'
    keys."""
    entry = index.manifest["ann"]
    if not ann.usable(entry):
        return [f"approximate index: not one this version reads ({str(entry)[:80]})"]
    for name, key in ((ann.ANN_FILE, ""), (ann.KEYS_FILE, "keys_")):
        found = content.check(name, f"approximate index: {name}", entry.get(f"{key}bytes"),
                             entry.get(f"{key}sha256"))
        if found:
            return found
    try:
        opened = ann.ApproximateIndex.open(index.directory, entry, rows.num_rows)
        keys = ann.row_keys(rows["id"])
    except (ann.AnnError, ValueError) as exc:
        return [f"approximate index: {_first_line(exc)}"]
    if not ann.distinct(keys):
        return ["approximate index: rows share keys (such a snapshot must have none)"]
    problems = []
    if not np.array_equal(opened.rows_of(keys), np.arange(len(keys))):
        problems.append(f"approximate index: {ann.KEYS_FILE} does not map the rows' keys to "
                        "their rows")
    absent = int(np.count_nonzero(~np.asarray(opened.graph.contains(keys), dtype=bool)))
    if absent:
        problems.append(f"approximate index: {absent} rows missing from the graph")
    return problems


def _check_rows(rows: pa.Table, files: pa.Table) -> list[str]:
    problems = []
    duplicated = rows.num_rows - pc.count_distinct(rows["id"]).as_py() if rows.num_rows else 0
    if duplicated:
        problems.append(f"{duplicated} duplicated row ids")
    if rows.num_rows:
        flat = rows["vector"].combine_chunks().values.to_numpy(zero_copy_only=False)
        bad = int((~np.isfinite(flat.reshape(rows.num_rows, -1))).any(axis=1).sum())
        if bad:
            problems.append(f"{bad} rows have non-finite vector values")
    indexed = {
        path: (total, file_hash)
        for path, total, file_hash, status in zip(
            files["path"].to_pylist(), files["total_chunks"].to_pylist(),
            files["file_hash"].to_pylist(), files["status"].to_pylist())
        if status in (INDEXED, STALE)
    }
    expected = dict(indexed)
    chunks: dict[str, list[int]] = {}
    for row_id, path, index, total, file_hash in zip(
            rows["id"].to_pylist(), rows["path"].to_pylist(), rows["chunk_index"].to_pylist(),
            rows["total_chunks"].to_pylist(), rows["file_hash"].to_pylist()):
        chunks.setdefault(path, []).append(index)
        if path in expected and (total, file_hash) != expected[path]:
            problems.append(f"{path}: rows disagree with files.parquet (chunks/hash)")
            expected.pop(path)
        if row_id != chunk_id(path, file_hash, index):
            problems.append(f"{path} chunk {index}: id is not the deterministic id")
    for path in sorted(set(chunks) - set(indexed)):
        problems.append(f"{path}: has rows but is not indexed in files.parquet")
    for path, (total, _) in sorted(expected.items()):
        counts = Counter(chunks.get(path, []))
        if sorted(counts) != list(range(total)) or any(n != 1 for n in counts.values()):
            problems.append(f"{path}: rows {_describe(counts)} instead of chunks 0..{total - 1}"
                            if total else f"{path}: has rows but 0 chunks")
    return problems


def _describe(counts: Counter) -> str:
    if not counts:
        return "missing"
    duplicates = sorted(i for i, n in counts.items() if n > 1)
    text = f"{min(counts)}..{max(counts)} ({sum(counts.values())} rows)"
    return text + (f", duplicated {duplicates[:5]}" if duplicates else "")


def _check_source(files: pa.Table, source: str | Path, max_file_size: int) -> list[str]:
    recorded = {p: (size, mtime) for p, size, mtime in zip(
        files["path"].to_pylist(), files["size"].to_pylist(), files["mtime_ns"].to_pylist())}
    problems = []
    seen = set()
    for entry in iter_source_files(source, max_file_size=max_file_size):
        seen.add(entry.path)
        if entry.path not in recorded:
            problems.append(f"{entry.path}: in the source but missing from the index")
        elif recorded[entry.path] != (entry.size, entry.mtime_ns):
            problems.append(f"{entry.path}: changed since it was indexed (stale)")
    for path in sorted(set(recorded) - seen):
        problems.append(f"{path}: in the index but no longer in the source")
    return problems


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
