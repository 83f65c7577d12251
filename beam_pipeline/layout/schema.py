"""The index layout contract: Arrow schemas of the shards and of files.parquet, and versions.

Readers outside this project rely on these; bump SCHEMA_VERSION whenever a column changes and
FORMAT_VERSION whenever the manifest or folder layout changes (README, "Index layout").
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from ..source import storage

FORMAT_VERSION = 1
SCHEMA_VERSION = 1

CURRENT_FILE = "CURRENT"
SNAPSHOTS_DIR = "snapshots"
STAGING_DIR = ".staging"
MANIFEST_FILE = "manifest.json"
FILES_TABLE = "files.parquet"
# How long a superseded snapshot stays for the readers that opened it while it was live: a
# search process reads it for well under a second; a long-lived reader (a server, a Python
# Index) re-reads CURRENT when a file it wants is gone (index.Index.search_request).
PRUNE_GRACE_S = 600.0
SHARD_PREFIX = "part-"
JOURNAL_DIR = ".journal"  # OUT/.journal/: the resume journal, outside every snapshot (journal.py)
# In a run's staging folder (OUT/.staging/<id>/), never in a snapshot:
STAGED_SUMMARY = "_staged.json"  # the shards the pipeline reported (successful attempts only)
SPILL_DIR = "_spill"  # vectors on their way to the shards (local modes)
REUSE_TABLE = "_reuse.parquet"  # previous vectors of changed files, by chunk text (re-index)

# File statuses in files.parquet.
INDEXED = "indexed"
FAILED = "failed"
SKIPPED = "skipped"
STALE = "stale"  # re-embedding failed; the previous rows are kept until a retry succeeds

GIT_BLOB = "git_blob"

# Beam names a list's child "item", pyarrow "element"; we keep pyarrow's default everywhere.
VECTOR_FIELD = "vector"


def row_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("chunk_index", pa.int32(), nullable=False),
            pa.field("total_chunks", pa.int32(), nullable=False),
            pa.field("line_start", pa.int32(), nullable=False),
            pa.field("line_end", pa.int32(), nullable=False),
            pa.field("char_start", pa.int64(), nullable=False),
            pa.field("char_end", pa.int64(), nullable=False),
            pa.field("language", pa.string(), nullable=False),
            pa.field("file_hash", pa.string(), nullable=False),
            pa.field("file_size", pa.int64(), nullable=False),
            pa.field("content", pa.string(), nullable=False),
            pa.field(VECTOR_FIELD, pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


FILES_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("file_hash", pa.string()),
        pa.field("total_chunks", pa.int32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        # git's blob id of the content, when SOURCE is a git work tree and git vouched for the
        # file at this run (tracked, unmodified); else null. Absent from older snapshots.
        pa.field(GIT_BLOB, pa.string()),
    ]
)


def chunk_id(path: str, file_hash: str, chunk_index: int) -> str:
    """Deterministic row id: the same chunk of the same file content always gets the same id."""
    key = f"{path}\x00{file_hash}\x00{chunk_index}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(key).hexdigest()[:32]


# Rows are sorted by path and cut into row groups of this size, so the path statistics of a row
# group let a reader that wants a few files (re-indexing's vector reuse) skip the rest, and a
# search reads only the groups of its hits: on a 16k-row stdlib shard a group of the snippet
# columns reads in 1.4 ms at 1,024 rows against 7.2 ms at 8,192, for the same file size (12.1
# against 12.0 MB) and write time.
ROW_GROUP_SIZE = 1_024


def write_table(table: pa.Table, path: str) -> storage.Stored:
    """Write a shard or a files table as the layout has them, atomically (on any FileSystems
    scheme); its size and sha256.

    zstd; only low-cardinality string columns are dictionary-encoded: on the vector column a
    dictionary only grows the file and slows the write (BEAM_NOTES.md).
    """
    dictionary_columns = [name for name in ("path", "language", "file_hash", "status")
                          if name in table.column_names]
    return storage.write_parquet(table, str(path), compression="zstd",
                                 use_dictionary=dictionary_columns, row_group_size=ROW_GROUP_SIZE)
