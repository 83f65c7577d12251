"""The index's files, and a URL SOURCE's, through Beam's FileSystems: a local folder or any
scheme Beam has installed (gs://, s3://, hdfs://, …), so workers of a distributed runner read
and write where the launcher plans and commits.

A local output keeps what only a local filesystem gives: fsync'd atomic replace, hard links,
an atomic folder rename. On an object store a file appears whole when its upload closes, and a
folder rename is a copy of each object; that is safe for the index because `CURRENT` — one
object, written last — is the only thing a reader trusts.

s3:// goes through one `S3IO` per thread instead of Beam's S3 filesystem, which builds a new
boto3 session and client for every call: 150 ms of CPU each (measured here), which made a
worker spend most of its time on clients (two opens per source file, a look at the cancel flag
every second). A client keeps its download stream, so it is not shared across threads. Every
other scheme goes through FileSystems.

Example::

    storage.write_bytes(storage.join(out, "CURRENT"), b"20261128T...\\n")
    table = storage.read_parquet(storage.join(snapshot, "files.parquet"))
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import IndexReadError

if TYPE_CHECKING:
    from apache_beam.options.pipeline_options import PipelineOptions

# Beam's own rule for a URL's scheme (FileSystems.URI_SCHEMA_PATTERN): local paths are told
# apart without importing Beam, which costs most of a search's or a verify's time.
_SCHEME = re.compile(r"(?P<scheme>[a-zA-Z][-a-zA-Z0-9+.]*)://.*")
_PARALLEL_REQUESTS = 16

_options: PipelineOptions | None = None  # this process's filesystem options, once given
_generation = 0  # bumped with every new set of options: cached clients are rebuilt
_applied: str | None = None  # the worker options this process was given
_threads = threading.local()


def use_options(options: PipelineOptions | Sequence[str]) -> None:
    """Configure this process's FileSystems (credentials, endpoints: e.g. --s3_endpoint_url).

    No flags, and Beam not imported yet: nothing to configure, and Beam stays unimported."""
    global _options, _generation
    if isinstance(options, (list, tuple)) and not options \
            and "apache_beam.io.filesystems" not in sys.modules:
        _options, _generation = None, _generation + 1
        return
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    if not isinstance(options, PipelineOptions):
        options = PipelineOptions(list(options))
    FileSystems.set_options(options)
    _options, _generation = options, _generation + 1


def filesystem_options(options: PipelineOptions) -> dict:
    """The run's options that Beam's filesystems read (S3's, GCS's, Azure's, HDFS's), as a
    dict for `use_worker_options`; nothing else of the run goes to the workers this way."""
    from apache_beam.options.pipeline_options import (
        AzureOptions,
        GoogleCloudOptions,
        HadoopFileSystemOptions,
        S3Options,
        _BeamArgumentParser,
    )

    parser = _BeamArgumentParser()
    for cls in (S3Options, GoogleCloudOptions, AzureOptions, HadoopFileSystemOptions):
        cls._add_argparse_args(parser)
    wanted = {action.dest for action in parser._actions}
    return {k: v for k, v in options.get_all_options(drop_default=True).items() if k in wanted}


def use_worker_options(options: dict) -> None:
    """On a worker: configure FileSystems from the run's options (a dict of
    `PipelineOptions.get_all_options(drop_default=True)`), once per process and option set.

    A runner's worker usually does this itself (sdk_worker_main), but not every worker does:
    Beam's Python worker pool (`--environment_type=EXTERNAL`) starts an SDK harness directly,
    whose FileSystems then know no endpoint and no credentials. DoFns that touch SOURCE or OUT
    call this in setup, so every worker is alike.
    """
    global _applied
    key = repr(sorted(options.items()))
    if options and key != _applied:
        from apache_beam.options.pipeline_options import PipelineOptions

        use_options(PipelineOptions.from_dictionary(options))
        _applied = key


def _filesystems():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _raw():
    from apache_beam.io.filesystem import CompressionTypes

    return CompressionTypes.UNCOMPRESSED  # never guess a compression from the file's suffix


class _Beam:
    """Any scheme, through Beam's FileSystems."""

    @staticmethod
    def exists(path: str) -> bool:
        return _filesystems().exists(path)

    @staticmethod
    def open(path: str) -> BinaryIO:
        return _filesystems().open(path, compression_type=_raw())

    @staticmethod
    def create(path: str) -> BinaryIO:
        return _filesystems().create(path, compression_type=_raw())

    @staticmethod
    def listing(prefix: str) -> list[tuple[str, int, float]]:
        found = _filesystems().match([prefix.rstrip("/") + "/**"])[0].metadata_list
        return [(m.path, m.size_in_bytes, m.last_updated_in_seconds) for m in found]

    @staticmethod
    def stat(path: str) -> tuple[int, float] | None:
        try:
            meta = _filesystems().metadata(path)
        except Exception:  # noqa: BLE001 - Beam wraps "not found" differently per scheme
            return None
        return meta.size_in_bytes, meta.last_updated_in_seconds

    @staticmethod
    def delete(paths: list[str]) -> None:
        _filesystems().delete(paths)

    @staticmethod
    def copy(sources: list[str], targets: list[str]) -> None:
        _filesystems().copy(sources, targets)

    @staticmethod
    def rename(sources: list[str], targets: list[str]) -> None:
        _filesystems().rename(sources, targets)


class _S3:
    """s3:// through this thread's S3IO (see the module's docstring)."""

    def __init__(self):
        from apache_beam.io.aws import s3io
        from apache_beam.io.aws.clients.s3 import boto3_client, messages

        self.io = s3io.S3IO(client=boto3_client.Client(options=_options))
        self.generation = _generation
        self._error = messages.S3ClientError

    @contextlib.contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        try:
            yield
        except self._error as exc:
            if exc.code == 404:
                raise FileNotFoundError(path) from None
            raise OSError(f"{path}: {exc.message}") from None

    def exists(self, path: str) -> bool:
        with self._errors(path):
            return self.io.exists(path)

    def open(self, path: str) -> BinaryIO:
        with self._errors(path):
            return self.io.open(path, "r")

    def create(self, path: str) -> BinaryIO:
        with self._errors(path):
            return self.io.open(path, "w")

    def listing(self, prefix: str) -> list[tuple[str, int, float]]:
        with self._errors(prefix):
            return [(path, size, updated) for path, (size, updated)
                    in self.io.list_files(prefix.rstrip("/") + "/", with_metadata=True)]

    def stat(self, path: str) -> tuple[int, float] | None:
        with self._errors(path):
            for found, (size, updated) in self.io.list_files(path, with_metadata=True):
                if found == path:
                    return size, updated
        return None

    def delete(self, paths: list[str]) -> None:
        with self._errors(paths[0]):
            self.io.delete_paths(paths)

    def copy(self, sources: list[str], targets: list[str]) -> None:
        with self._errors(sources[0]):
            self.io.copy_paths(list(zip(sources, targets)))

    def rename(self, sources: list[str], targets: list[str]) -> None:
        with self._errors(sources[0]):
            self.io.rename_files(list(zip(sources, targets)))


def _remote(path: str) -> _Beam | _S3:
    if _options is None or not path.startswith("s3://"):
        return _Beam
    store = getattr(_threads, "s3", None)
    if store is None or store.generation != _generation:
        store = _threads.s3 = _S3()
    return store


def is_local(path: str) -> bool:
    match = _SCHEME.match(str(path).strip())
    return match is None or match["scheme"] == "file"


def check_scheme(path: str) -> None:
    """Raise ValueError naming the missing extra when Beam has no filesystem for `path`."""
    _filesystems().get_filesystem(str(path))


def join(base: str, *parts: str) -> str:
    base = str(base)
    return os.path.join(base, *parts) if is_local(base) else _filesystems().join(base, *parts)


def exists(path: str) -> bool:
    return os.path.exists(path) if is_local(path) else _remote(path).exists(path)


def open_read(path: str) -> BinaryIO:
    """A file for reading on any scheme; FileNotFoundError when there is none (local, s3)."""
    if is_local(path):
        return open(path, "rb")
    return _remote(path).open(path)


def read_bytes(path: str) -> bytes:
    """Raises FileNotFoundError when `path` does not exist, on every scheme."""
    if not is_local(path) and not isinstance(_remote(path), _S3) and not exists(path):
        raise FileNotFoundError(path)
    with open_read(path) as fh:
        return fh.read()


def read_lines(path: str) -> Iterator[str]:
    """The lines of a text file on any scheme, streamed (without their line ends)."""
    with open_read(path) as fh:
        for line in fh:
            yield line.rstrip(b"\r\n").decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    """Write atomically: a reader sees the old content or the new, never a part.

    Beam's object-store filesystems upload in parts and cannot create a zero-byte object: write
    at least one byte there."""
    if is_local(path):
        tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return
    with _remote(path).create(path) as fh:
        fh.write(data)


def listing(prefix: str) -> list[tuple[str, int, float]]:
    """(URL, size, modification time in seconds) of every object under a remote prefix."""
    return _remote(prefix).listing(prefix)


def stat(path: str) -> tuple[int, float] | None:
    """(size, modification time in seconds) of one remote object, or None when there is none."""
    return _remote(path).stat(path)


def make_folder(path: str) -> None:
    """Create a local folder (and its parents); object stores need none."""
    if is_local(path):
        os.makedirs(path, exist_ok=True)


def read_parquet(path: str, **kwargs) -> pa.Table:
    """pq.read_table on any scheme (local: by path, without a copy through Python)."""
    if is_local(path):
        if set(kwargs) <= {"columns"}:
            # One file needs no dataset: pq.read_table would import pyarrow.dataset, and with
            # it pandas (0.2 s of an up-to-date re-index that takes 0.8 s).
            return pq.ParquetFile(path).read(**kwargs)
        return pq.read_table(path, **kwargs)
    # Whole into memory first: pyarrow reading through a Python stream can abort the
    # interpreter at exit ("terminate called without an active exception"), even on one thread.
    return pq.read_table(pa.BufferReader(read_bytes(path)), **kwargs)


def read_parquet_rows(path: str, rows: Iterable[int], columns: Sequence[str]
                      ) -> tuple[pa.Table, dict[int, int]]:
    """The row groups of a Parquet file that hold `rows` (positions in the file), and where
    each of those rows is in the table returned (rows past the end are left out). Locally only
    those groups are read; a remote file is read whole (see read_parquet)."""
    wanted = sorted(set(rows))
    if not is_local(path):
        table = read_parquet(path, columns=list(columns))
        return table, {row: row for row in wanted if 0 <= row < table.num_rows}
    reader = pq.ParquetFile(path)
    groups, where, start, read = [], {}, 0, 0
    for group in range(reader.metadata.num_row_groups):
        size = reader.metadata.row_group(group).num_rows
        inside = [row for row in wanted if start <= row < start + size]
        if inside:
            groups.append(group)
            where.update((row, read + row - start) for row in inside)
            read += size
        start += size
    return reader.read_row_groups(groups, columns=list(columns)), where


class Stored(NamedTuple):
    """What was written: its size and the sha256 of its bytes (hex), as a manifest records
    them."""

    bytes: int
    sha256: str


def sha256(path: str) -> str:
    """The hex sha256 of a file's bytes, on any scheme, read in blocks."""
    if is_local(path):
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    if not isinstance(_remote(path), _S3) and not exists(path):
        raise FileNotFoundError(path)
    digest = hashlib.sha256()
    with open_read(path) as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class AlteredFile(IndexReadError, ValueError):
    """A file whose bytes are not those its manifest records."""


def read_checked(path: str, digest: str | None) -> bytes:
    """A file's bytes, refused (AlteredFile) when they do not have the sha256 `digest` (None:
    an older manifest recorded none, and nothing is checked)."""
    data = read_bytes(path)
    if digest and hashlib.sha256(data).hexdigest() != digest:
        raise AlteredFile(f"{path}: content differs from the sha256 its manifest records "
                          "(altered or corrupt)")
    return data


def write_parquet(table: pa.Table, path: str, **kwargs) -> Stored:
    """Write a Parquet file atomically (local: temp name, then rename)."""
    if is_local(path):
        tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
        pq.write_table(table, tmp, **kwargs)
        stored = Stored(os.path.getsize(tmp), sha256(tmp))  # just written: read from memory
        os.replace(tmp, path)
        return stored
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **kwargs)
    write_bytes(path, buffer.getvalue())
    return Stored(buffer.tell(), hashlib.sha256(buffer.getbuffer()).hexdigest())


def size(path: str) -> int:
    if is_local(path):
        return os.path.getsize(path)
    found = stat(path)
    if found is None:
        raise FileNotFoundError(path)
    return found[0]


def list_tree(folder: str) -> list[str]:
    """Paths of every file under `folder`, relative to it (posix separators)."""
    folder = str(folder).rstrip("/")
    if is_local(folder):
        if not os.path.isdir(folder):
            return []
        return sorted(os.path.relpath(os.path.join(d, f), folder).replace(os.sep, "/")
                      for d, _, files in os.walk(folder) for f in files)
    return sorted(path[len(folder) + 1:] for path, _, _ in listing(folder))


def list_names(folder: str) -> list[str]:
    """The names directly in `folder` (files and folders)."""
    if is_local(folder):
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return sorted({rel.split("/", 1)[0] for rel in list_tree(folder)})


def delete_tree(folder: str) -> None:
    """Remove `folder` and everything in it; missing is fine."""
    if is_local(folder):
        shutil.rmtree(folder, ignore_errors=True)
        return
    paths = [join(folder, rel) for rel in list_tree(folder)]
    if paths:
        _remote(folder).delete(paths)


def delete(path: str) -> None:
    """Remove one file; missing is fine."""
    if is_local(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    elif exists(path):
        _remote(path).delete([path])


def delete_files(paths: Sequence[str]) -> None:
    """Remove several files at once (one batched request on object stores); missing is fine."""
    local = [p for p in paths if is_local(p)]
    for path in local:
        delete(path)
    remote = [p for p in paths if not is_local(p)]
    if remote:
        _remote(remote[0]).delete(remote)


def move_tree(source: str, target: str) -> None:
    """Move a folder: one atomic rename locally; object by object elsewhere."""
    if is_local(source):
        os.rename(source, target)
        _fsync_dir(os.path.dirname(target))
        return
    names = list_tree(source)

    def move(name: str) -> None:
        _remote(source).rename([join(source, name)], [join(target, name)])

    # A rename is a server-side copy and a delete per object, seconds for a large shard: many
    # at once, a thread (and its client) for every 4 objects, up to 16.
    with ThreadPoolExecutor(min(_PARALLEL_REQUESTS, len(names) // 4 + 1), "move") as pool:
        list(pool.map(move, names))  # re-raises the first failure


def link_or_copy(source: str, target: str) -> None:
    """A hard link where the filesystem allows it, else a copy (server-side on object stores)."""
    if is_local(source):
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return
    _remote(source).copy([source], [target])


def sync_tree(folder: str) -> None:
    """Make a local folder's files durable, then its folders' entries, deepest first: after a
    power cut, a file that a later rename or manifest names must hold its data. (Object stores
    need nothing: an upload that closed without an error is stored durably.)"""
    if not is_local(folder):
        return
    for root, _, files in os.walk(folder, topdown=False):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)


def sync_folder(folder: str) -> None:
    """Make a local folder's entries durable (a rename is only durable once its folder is)."""
    if is_local(folder):
        _fsync_dir(folder)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
