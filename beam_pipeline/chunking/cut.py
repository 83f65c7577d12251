"""Cutting one file: the configured chunker (syntax or fixed-size) over a file's decoded text,
and the whole read → decode → cut of one file. No Beam: ChunkFile, assembly, the launcher's
dry run and the benchmarks cut files with it.

Example::

    config = ChunkerConfig("repo", chunk_size=1000, overlap=150, max_file_size=1 << 20,
                           chunker="syntax")
    digest, decoded, chunks = load_chunks(config, "pkg/mod.py")
"""

from __future__ import annotations

from ..source.text import SYNTAX, ChunkerConfig, Decoded, load_text
from .fixed import Chunk, chunk_text


def cut(config: ChunkerConfig, rel: str, text: str) -> tuple[list[Chunk], str | None]:
    """The chunks of `text` (the file `rel`) and, when the syntax chunker fell back to the
    fixed-size one for this file, why."""
    if config.chunker == SYNTAX:
        from .syntax import NoSyntax, syntax_chunks  # tree-sitter loads only when asked for

        try:
            return syntax_chunks(text, rel, config.chunk_size, config.overlap), None
        except NoSyntax as exc:
            return chunk_text(text, config.chunk_size, config.overlap), exc.reason
    return chunk_text(text, config.chunk_size, config.overlap), None


def load_chunks(config: ChunkerConfig, rel: str) -> tuple[str, Decoded, list[Chunk]]:
    """Bytes → (sha256 hex, Decoded, chunks). Raises OSError or FileSkipped."""
    digest, decoded = load_text(config, rel)
    return digest, decoded, cut(config, rel, decoded.text)[0]
