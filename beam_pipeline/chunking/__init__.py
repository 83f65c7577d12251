"""The chunking stage: a file's text cut into chunks, by syntax (definitions of the languages
tree-sitter has a grammar for, `syntax.py`) or at a fixed size (`fixed.py`); `cut.py` picks
the chunker and cuts one file; `transform.py` is the Beam step, `ChunkFiles`, which imports
Beam (nothing else here does).

Example::

    from beam_pipeline.chunking import chunk_text
    chunks = chunk_text(text, size=1000, overlap=150)
"""

from ..source.text import (
    BINARY_SNIFF_BYTES,
    Decoded,
    UndecodableError,
    decode_source,
    is_binary,
    looks_like_text,
)
from .cut import cut, load_chunks
from .fixed import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_OVERLAP_RATIO,
    Chunk,
    chunk_spans,
    chunk_text,
    cut_at,
    default_overlap,
    spans_of,
)

__all__ = ["BINARY_SNIFF_BYTES", "DEFAULT_CHUNK_SIZE", "DEFAULT_OVERLAP_RATIO", "Chunk",
           "Decoded", "UndecodableError", "chunk_spans", "chunk_text", "cut", "cut_at",
           "decode_source", "default_overlap", "is_binary", "load_chunks", "looks_like_text",
           "spans_of"]
