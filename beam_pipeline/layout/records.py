"""Element types that cross stage boundaries.

A file's chunks travel as one plain tuple `(path, [(chunk_index, text), …])`, batches of chunks
as `[(path, chunk_index, text), …]`, and embedded chunks, per file of an embedded batch, as a
vector block `(path, (chunk_indices, rows))`: `rows` holds the float32 vectors in `chunk_indices`
order, as bytes or as a reference into a spill file (spill.py). Plain tuples are cheap to
encode, and there are few elements per file (Beam's cost is per element).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .schema import FAILED, INDEXED, SKIPPED


@dataclass(frozen=True, slots=True)  # slots: a run holds one per file, 100,000 and more
class FileRecord:
    """What happened to one source file; one row of files.parquet."""

    path: str
    size: int
    mtime_ns: int
    file_hash: str | None = None
    total_chunks: int = 0
    status: str = INDEXED
    error: str | None = None
    # The chunks' spans (chunking.spans_of), from ChunkFile to AssembleFile only: assembly
    # re-reads the file but need not cut it again. Not a column of files.parquet.
    spans: bytes | None = None

    @property
    def success(self) -> bool:
        return self.status == INDEXED

    def failed(self, reason: str) -> FileRecord:
        return replace(self, status=FAILED, error=reason)

    def skipped(self, reason: str) -> FileRecord:
        return replace(self, status=SKIPPED, error=reason)
