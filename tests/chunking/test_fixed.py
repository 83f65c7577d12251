import codecs
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_pipeline.chunking import (
    UndecodableError,
    chunk_spans,
    chunk_text,
    decode_source,
    default_overlap,
    is_binary,
)

text_with_lines = st.text(alphabet=st.sampled_from("ab \n\t\r→é"), max_size=3000)


@settings(max_examples=200, deadline=None)
@given(text=text_with_lines, size=st.integers(1, 400), overlap_frac=st.floats(0, 0.9))
def test_chunks_cover_text_with_exact_overlap_and_naive_line_numbers(text, size, overlap_frac):
    overlap = min(int(size * overlap_frac), size - 1)
    chunks = chunk_text(text, size, overlap)
    if not text.strip():
        assert chunks == []
        return
    assert chunks[0].char_start == 0
    assert chunks[-1].char_end == len(text)
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert chunk.text == text[chunk.char_start:chunk.char_end]
        assert 0 < len(chunk.text) <= size
        assert chunk.line_start == text[:chunk.char_start].count("\n") + 1
        assert chunk.line_end == text[:chunk.char_end - 1].count("\n") + 1
    for prev, nxt in itertools.pairwise(chunks):
        assert prev.char_end - nxt.char_start == overlap
        assert len(prev.text) == size  # only the last chunk may be short


def test_default_overlap_is_fifteen_percent():
    assert default_overlap(1000) == 150
    spans = chunk_spans(2000, 1000, 150)
    assert spans == [(0, 1000), (850, 1850), (1700, 2000)]


@pytest.mark.parametrize("size,overlap", [(0, 0), (10, 10), (10, -1)])
def test_invalid_chunk_parameters_raise(size, overlap):
    with pytest.raises(ValueError):
        chunk_spans(100, size, overlap)


def test_whitespace_only_text_has_no_chunks():
    assert chunk_text("   \n\n\t  ") == []
    assert chunk_text("") == []


def test_line_numbers_are_linear_time_on_a_large_text():
    text = "x = 1\n" * 200_000  # 1.2 MB: a quadratic rescan per chunk would take minutes
    chunks = chunk_text(text, 1000, 150)
    assert chunks[-1].line_end == 200_000
    assert len(chunks) == len(chunk_spans(len(text), 1000, 150))


@pytest.mark.parametrize("encoding,bom", [
    ("utf-8-sig", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE),
    ("utf-16-be", codecs.BOM_UTF16_BE), ("utf-32-le", codecs.BOM_UTF32_LE),
    ("utf-32-be", codecs.BOM_UTF32_BE),
])
def test_decode_by_bom(encoding, bom):
    text = "def héllo():\n    return '→'\n"
    data = text.encode(encoding)
    if not data.startswith(bom):
        data = bom + data
    assert not is_binary(data)
    decoded = decode_source(data)
    assert decoded.text == text
    assert not decoded.legacy


def test_strict_utf8_then_legacy_then_undecodable():
    assert decode_source("naïve ✓".encode()).encoding == "utf-8"
    legacy = decode_source(b"caf\xe9 \x93quoted\x94\n")
    assert legacy.legacy and legacy.encoding == "cp1252" and legacy.text == "café “quoted”\n"
    latin = decode_source(b"undefined in cp1252: \x81\x8d\n")
    assert latin.legacy and latin.encoding == "latin-1"
    with pytest.raises(UndecodableError):
        decode_source(bytes(range(1, 32)) * 50 + b"\xff\xfe\xfd")


def test_binary_detection():
    assert is_binary(b"ELF\x00\x01\x02")
    assert not is_binary(b"plain text\n")
    assert not is_binary("utf16 text".encode("utf-16"))  # has NULs but a BOM
    assert not is_binary(b"a" * 9000 + b"\x00")  # NUL beyond the 8 KiB sniff window
