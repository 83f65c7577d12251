"""Pure chunking logic: bytes → text → fixed-size overlapping chunks with line numbers.

Nothing here knows about Beam, so it is unit- and property-tested directly.

Example::

    decoded = decode_source(b"def f():\\n    return 1\\n")
    for chunk in chunk_text(decoded.text, size=1000, overlap=150):
        print(chunk.index, chunk.line_start, chunk.line_end)
"""

from __future__ import annotations

import codecs
import re
from array import array
from dataclasses import dataclass
from typing import NamedTuple

DEFAULT_CHUNK_SIZE = 1000
DEFAULT_OVERLAP_RATIO = 0.15
# A NUL byte in the first 8 KiB is the same binary test git uses.
BINARY_SNIFF_BYTES = 8192

# BOMs in the order they must be tested: UTF-32 LE starts with the UTF-16 LE BOM.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control bytes that never occur in text (tab, newlines, form feed, ESC are allowed).
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")


class UndecodableError(ValueError):
    """The bytes are neither valid text in a known encoding nor plausibly text."""


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    legacy: bool  # decoded with a single-byte legacy codec as a last resort


class Chunk(NamedTuple):  # a tuple: made 37k times per stdlib run, twice
    index: int
    char_start: int
    char_end: int  # exclusive
    line_start: int  # 1-based, line of the first character
    line_end: int  # 1-based, line of the last character
    text: str


def default_overlap(size: int) -> int:
    return round(size * DEFAULT_OVERLAP_RATIO)


def is_binary(data: bytes) -> bool:
    """True for bytes with a NUL in the first 8 KiB and no Unicode BOM (UTF-16/32 text has NULs)."""
    if any(data.startswith(bom) for bom, _ in _BOMS):
        return False
    return b"\x00" in data[:BINARY_SNIFF_BYTES]


def looks_like_text(data: bytes) -> bool:
    """Heuristic for legacy-encoded text: almost no control bytes."""
    if not data:
        return True
    sample = data[:65536]
    return len(_CONTROL.findall(sample)) <= len(sample) * 0.01


def decode_source(data: bytes) -> Decoded:
    """Decode by BOM, else strict UTF-8, else (when it looks like text) cp1252 or latin-1.

    Raises UndecodableError when none applies.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return Decoded(data.decode(encoding), encoding, legacy=False)
            except UnicodeDecodeError as exc:
                raise UndecodableError(f"invalid {encoding} after BOM: {exc.reason}") from exc
    try:
        return Decoded(data.decode("utf-8"), "utf-8", legacy=False)
    except UnicodeDecodeError:
        pass
    if not looks_like_text(data):
        raise UndecodableError("not valid UTF-8 and does not look like text")
    try:
        return Decoded(data.decode("cp1252"), "cp1252", legacy=True)
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; latin-1 maps every byte.
        return Decoded(data.decode("latin-1"), "latin-1", legacy=True)


def chunk_spans(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans [start, end) of fixed-size chunks; consecutive chunks share `overlap` chars.

    The last chunk ends at `length` and may be shorter; no chunk lies wholly inside its predecessor.
    """
    if size <= 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, size), got {overlap} for size {size}")
    step = size - overlap
    spans = []
    start = 0
    while start < length:
        end = min(start + size, length)
        spans.append((start, end))
        if end == length:
            break
        start += step
    return spans


def spans_of(chunks: list[Chunk]) -> bytes:
    """The chunks' spans and lines, packed: what assembly needs to cut the file again
    without the chunker (a syntax chunker's parse costs more than reading the file)."""
    return array("q", [v for c in chunks for v in c[1:5]]).tobytes()


def cut_at(text: str, spans: bytes) -> list[Chunk]:
    """The chunks of `text` that `spans_of` described."""
    values = array("q")
    values.frombytes(spans)
    return [Chunk(i, start, end, first, last, text[start:end])
            for i, (start, end, first, last) in enumerate(zip(*[iter(values)] * 4))]


def chunk_text(text: str, size: int = DEFAULT_CHUNK_SIZE, overlap: int | None = None) -> list[Chunk]:
    """Cut `text` into chunks with 1-based line numbers.

    Whitespace-only text has no chunks. Line numbers come from counting newlines between
    consecutive chunk starts (in C, `str.count`), so the cost is linear in the text, not in
    text × chunks.
    """
    if overlap is None:
        overlap = default_overlap(size)
    if not text or text.isspace():  # not text.strip(): that copies the text
        return []
    chunks = []
    line_start, previous = 1, 0
    for index, (start, end) in enumerate(chunk_spans(len(text), size, overlap)):
        line_start += text.count("\n", previous, start)
        previous = start
        # A newline belongs to the line it ends, so the last character's line counts the
        # newlines strictly before it.
        line_end = line_start + text.count("\n", start, end - 1)
        chunks.append(Chunk(index, start, end, line_start, line_end, text[start:end]))
    return chunks
