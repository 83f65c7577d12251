"""One source file: read it (a local file, or an object through Beam's FileSystems), hash it,
decode it and cut it into chunks. Pure, without Beam: ChunkFile and AssembleFile cut files
with it on the workers, and the launcher's dry run and the benchmarks do too.

Example::

    config = ChunkerConfig("repo", chunk_size=1000, overlap=150, max_file_size=1 << 20,
                           chunker="syntax")
    digest, decoded, chunks = load_chunks(config, "pkg/mod.py")
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass

from .chunking import Chunk, Decoded, UndecodableError, chunk_text, decode_source, is_binary
from .discover import is_url, join_url, read_store_object
from .secretscan import holds_secret

FIXED, SYNTAX = "fixed", "syntax"
CHUNKERS = (FIXED, SYNTAX)
DEFAULT_CHUNKER = SYNTAX  # of a new index: better search (README: Quality) for 1.2x the time
# The flag's default: keep the live snapshot's chunker, whose change would re-embed everything.
AUTO = "auto"


class FileSkipped(Exception):
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


class OutsideRootError(OSError):
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


def describe_os_error(exc: OSError) -> str:
    if isinstance(exc, OutsideRootError):
        return str(exc)
    text = str(exc.strerror or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
