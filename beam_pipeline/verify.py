"""verify: check the live snapshot against its manifest (and optionally against the source).

Example::

    problems = verify_index(Path("index"))
    assert problems == []
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import ann, lexical, storage
from .discover import DEFAULT_MAX_FILE_SIZE, iter_source_files
from .index import Index, IndexReadError
from .schema import INDEXED, STALE, chunk_id, row_schema


def verify_index(out: str | Path, source: str | Path | None = None,
                 max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> list[str]:
    """Every problem found, as one line each; an empty list means the index is sound."""
    try:
        index = Index.open(out)
    except IndexReadError as exc:
        return [str(exc)]
    problems: list[str] = []
    try:
        dim = index.dim
        expected_schema = row_schema(dim)
    except (KeyError, TypeError, ValueError) as exc:
        return [f"manifest fingerprint is malformed: {exc!r}"]
    try:
        files = index.files_table()
    except (OSError, pa.ArrowException) as exc:
        return [f"files.parquet unreadable: {exc}"]

    tables = []
    for shard in index.manifest["shards"]:
        name = shard["path"]
        try:
            table = storage.read_parquet(index.shard_path(name))
        except (OSError, pa.ArrowException) as exc:
            problems.append(f"shard {name}: missing or unreadable ({_first_line(exc)})")
            continue
        if table.num_rows != shard.get("rows"):
            problems.append(f"shard {name}: {table.num_rows} rows, manifest says "
                            f"{shard.get('rows')}")
        if not table.schema.equals(expected_schema, check_metadata=False):
            problems.append(f"shard {name}: schema differs from schema version "
                            f"{index.manifest.get('schema_version')} with dim {dim}")
            continue
        tables.append(table)
    rows = pa.concat_tables(tables) if tables else expected_schema.empty_table()
    counts = index.manifest.get("counts")
    manifest_rows = counts.get("rows") if isinstance(counts, dict) else None
    if manifest_rows is not None and sum(t.num_rows for t in tables) != manifest_rows \
            and len(tables) == len(index.shards):
        problems.append(f"{rows.num_rows} rows in shards, manifest counts {manifest_rows}")
    problems += _check_rows(rows, files)
    if "lexical" in index.manifest:
        problems += _check_lexical(index, rows)
    if "ann" in index.manifest:
        problems += _check_ann(index, rows)
    if source is not None:
        problems += _check_source(files, source, max_file_size)
    return problems


def _check_lexical(index: Index, rows: pa.Table) -> list[str]:
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
        try:
            size = storage.size(storage.join(index.directory, lexical.LEXICAL_DIR, name))
        except OSError:
            problems.append(f"lexical index: {name} is missing")
            continue
        if size != item.get("bytes"):
            problems.append(f"lexical index: {name} has {size} bytes, manifest says "
                            f"{item.get('bytes')}")
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


def _check_ann(index: Index, rows: pa.Table) -> list[str]:
    """The approximate index's file is the manifest's, and its graph holds exactly the rows'
    keys."""
    entry = index.manifest["ann"]
    if not ann.usable(entry):
        return [f"approximate index: not one this version reads ({str(entry)[:80]})"]
    for name, key in ((ann.ANN_FILE, "bytes"), (ann.KEYS_FILE, "keys_bytes")):
        try:
            size = storage.size(storage.join(index.directory, name))
        except OSError:
            return [f"approximate index: {name} is missing"]
        if size != entry.get(key):
            return [f"approximate index: {name} has {size} bytes, manifest says {entry.get(key)}"]
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
