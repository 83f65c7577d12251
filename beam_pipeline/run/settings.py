"""IndexSettings: everything that shapes an index (its chunker, its embedder, their sizes),
and the fingerprint a snapshot records of them. Both the launcher (`indexing.run_index`) and
the pipeline (`pipeline.IndexFiles`) take one; it imports neither.

Example::

    settings = IndexSettings.create("static", chunk_size=800)
    settings.for_previous(None).fingerprint()["chunker"]  # {"name": "syntax", "size": 800, …}
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..chunking.fixed import DEFAULT_CHUNK_SIZE, default_overlap
from ..embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from ..errors import UsageError
from ..layout.schema import SCHEMA_VERSION
from ..source.discover import DEFAULT_MAX_FILE_SIZE
from ..source.text import AUTO, CHUNKERS, DEFAULT_CHUNKER, FIXED, SYNTAX
from .flags import DEFAULT_BATCH_SIZE

if TYPE_CHECKING:
    from ..store.reindex import Previous
    from .options import IndexOptions

# The chunkers' names in the fingerprint; SYNTAX_VERSION moves when its cuts change.
CHUNKER_NAMES = {FIXED: "fixed-chars", SYNTAX: "syntax"}
SYNTAX_VERSION = 1


@dataclass(frozen=True)
class IndexSettings:
    """Everything that shapes the index; resolved from IndexOptions or keyword arguments."""

    embedder: Embedder
    chunk_size: int
    chunk_overlap: int
    batch_size: int
    max_file_size: int
    embed_concurrency: int = 1  # batches embedded at once (remote providers: requests)
    embed_processes: int | None = None  # helper processes for a GIL-bound embedder; None: auto
    chunker: str = AUTO  # resolved by `for_previous` before anything is chunked
    # Index files that are or hold secrets too (secretscan.py); part of the fingerprint when
    # set, so turning it on or off rebuilds rather than leaving earlier skips in place.
    include_secrets: bool = False

    def fingerprint(self) -> dict:
        if self.chunker == AUTO:
            raise UsageError("the chunker is still 'auto': for_previous() decides it, and a "
                             "fingerprint names the chunker that cuts the files")
        chunker = {"name": CHUNKER_NAMES[self.chunker], "size": self.chunk_size,
                   "overlap": self.chunk_overlap}
        if self.chunker == SYNTAX:
            chunker["version"] = SYNTAX_VERSION
        return {
            "chunker": chunker,
            "embedder": self.embedder.fingerprint(),
            "schema_version": SCHEMA_VERSION,
            **({"include_secrets": True} if self.include_secrets else {}),
        }

    @classmethod
    def from_options(cls, options: IndexOptions | argparse.Namespace) -> IndexSettings:
        """From `PipelineOptions.view_as(IndexOptions)` or the CLI's parsed arguments."""
        return cls.create(options.embedder, chunk_size=options.chunk_size,
                          chunk_overlap=options.chunk_overlap, batch_size=options.batch_size,
                          max_file_size=options.max_file_size,
                          embedding_dim=options.embedding_dim,
                          embed_concurrency=options.embed_concurrency,
                          embed_processes=options.embed_processes, chunker=options.chunker,
                          include_secrets=getattr(options, "include_secrets", False),
                          embedder_options={"base_url": options.embedding_url,
                                            "model": options.embedding_model,
                                            "api_key_env": options.api_key_env})

    @classmethod
    def create(cls, embedder: str | Embedder = DEFAULT_EMBEDDER, *, chunk_size: int | None = None,
               chunk_overlap: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
               max_file_size: int = DEFAULT_MAX_FILE_SIZE,
               embedding_dim: int | None = None, embed_concurrency: int | None = None,
               embed_processes: int | None = None, chunker: str = AUTO,
               embedder_options: dict | None = None,
               include_secrets: bool = False) -> IndexSettings:
        if isinstance(embedder, str):
            embedder = get_embedder(embedder, dim=embedding_dim, **(embedder_options or {}))
        # The embedder's own default (voyage-code models: 4096, as the replaced system), else 1000.
        if chunk_size is None:
            chunk_size = embedder.default_chunk_size or DEFAULT_CHUNK_SIZE
        overlap = default_overlap(chunk_size) if chunk_overlap is None else chunk_overlap
        if chunk_size < 1 or not 0 <= overlap < chunk_size:
            raise UsageError(f"need chunk size ≥ 1 and 0 ≤ overlap < size, "
                             f"got size {chunk_size}, overlap {overlap}")
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        if max_file_size < 0:
            raise UsageError(f"max file size must be ≥ 0, got {max_file_size}")
        if embed_concurrency is not None:
            if embed_concurrency < 1:
                raise UsageError(f"embed concurrency must be at least 1, got {embed_concurrency}")
            # A local model's threads; left alone (all cores) when not asked for.
            embedder.use_threads(embed_concurrency)
        if embed_processes is not None and embed_processes < 0:
            raise UsageError(f"embed processes must be at least 0, got {embed_processes}")
        if chunker not in (AUTO, *CHUNKERS):
            raise UsageError(f"unknown chunker {chunker!r}; choose from "
                             f"{', '.join((AUTO, *CHUNKERS))}")
        return cls(embedder, chunk_size, overlap, batch_size, max_file_size,
                   embed_concurrency or 1, embed_processes, chunker, bool(include_secrets))

    def for_previous(self, previous: Previous | None) -> IndexSettings:
        """With chunker "auto": the live snapshot's chunker (another would re-embed every
        file), or the default for a new index or a --full rebuild (`previous` None)."""
        if self.chunker != AUTO:
            return self
        spec = (previous.manifest.get("fingerprint") or {}).get("chunker") if previous else None
        name = spec.get("name") if isinstance(spec, dict) else None
        chunker = next((key for key, value in CHUNKER_NAMES.items() if value == name),
                       DEFAULT_CHUNKER)
        return replace(self, chunker=chunker)
