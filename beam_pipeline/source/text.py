"""One source file's text: read it (a local file, or an object through Beam's FileSystems),
hash it, refuse binaries and secrets, and decode it (by its BOM, else strict UTF-8, else, when
it looks like text, a legacy single-byte codec). Pure, without Beam: the chunking and
assembly steps read files with it on the workers; `chunking.cut` cuts what it returns.

Example::

    config = ChunkerConfig("repo", chunk_size=1000, overlap=150, max_file_size=1 << 20)
    digest, decoded = load_text(config, "pkg/mod.py")
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
from dataclasses import dataclass

from .. import _moved
from ..errors import FileError
from .discover import is_url, join_url, read_store_object
from .secretscan import holds_secret

FIXED, SYNTAX = "fixed", "syntax"
CHUNKERS = (FIXED, SYNTAX)
DEFAULT_CHUNKER = SYNTAX  # of a new index: better search (README: Quality) for 1.2x the time
# The flag's default: keep the live snapshot's chunker, whose change would re-embed everything.
AUTO = "auto"

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


class UndecodableError(FileError, ValueError):
    """The bytes are neither valid text in a known encoding nor plausibly text."""


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    legacy: bool  # decoded with a single-byte legacy codec as a last resort


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


class FileSkipped(FileError):
    """The file is not indexable text; `reason` is the skip reason counted in the stats."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ChunkerConfig:
    root: str  # a local folder, or a URL the workers read through Beam's FileSystems
    chunk_size: int
    overlap: int
    max_file_size: int
    follow_symlinks: bool = False  # --follow-symlinks: read what a listed symlink points to
    chunker: str = FIXED  # or SYNTAX: cut code at definitions, fixed-size for the rest
    include_secrets: bool = False  # --include-secrets: index files that hold a secret too


class OutsideRootError(FileError, OSError):
    """A listed path that does not lie inside the source root."""


def read_source(root: str, rel: str, max_size: int, follow_symlinks: bool = False) -> bytes:
    """Read a source file: on a URL root through Beam's FileSystems; on a local one as a regular
    file, without blocking on FIFOs and — unless `follow_symlinks` — without following a final
    symlink."""
    if os.path.isabs(rel) or ".." in rel.split("/") or is_url(rel):
        raise OutsideRootError(f"{rel} is outside the source root")
    if is_url(root):
        data = read_store_object(join_url(root, rel), max_size + 1)
        if len(data) > max_size:
            raise FileSkipped("too_large")
        return data
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    fd = os.open(os.path.join(root, rel), flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileSkipped("not_regular")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_size + 1)
    finally:
        os.close(fd)
    if len(data) > max_size:
        raise FileSkipped("too_large")
    return data


def load_text(config: ChunkerConfig, rel: str) -> tuple[str, Decoded]:
    """Bytes → (sha256 hex, Decoded). Raises OSError or FileSkipped."""
    data = read_source(config.root, rel, config.max_file_size, config.follow_symlinks)
    digest = hashlib.sha256(data).hexdigest()
    if is_binary(data):
        raise FileSkipped("binary")
    try:
        decoded = decode_source(data)
    except UndecodableError as exc:
        raise FileSkipped("undecodable") from exc
    if not config.include_secrets and holds_secret(decoded.text):
        raise FileSkipped("secret")  # before any row, lexical entry, journal or spill of it
    return digest, decoded


def describe_os_error(exc: OSError) -> str:
    if isinstance(exc, OutsideRootError):
        return str(exc)
    text = str(exc.strerror or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


# Cutting moved to the chunking stage (chunking/cut.py), which imports this module.
__getattr__ = _moved.names("beam_pipeline.sourcefile",
                           {"cut": "chunking.cut", "load_chunks": "chunking.cut"})
