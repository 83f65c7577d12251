"""The output's files through Beam's FileSystems: a local folder or any scheme Beam has
installed (gs://, s3://, hdfs://, …), so workers of a distributed runner write where the
launcher commits.

A local output keeps what only a local filesystem gives: fsync'd atomic replace, hard links,
an atomic folder rename. On an object store a file appears whole when its upload closes, and a
folder rename is a copy of each object; that is safe for the index because `CURRENT` — one
object, written last — is the only thing a reader trusts.

Example::

    storage.write_bytes(storage.join(out, "CURRENT"), b"20261128T...\\n")
    table = storage.read_parquet(storage.join(snapshot, "files.parquet"))
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

_RAW = CompressionTypes.UNCOMPRESSED  # never guess a compression from the file's suffix


def use_options(options: PipelineOptions | Sequence[str]) -> None:
    """Configure this process's FileSystems (credentials, endpoints: e.g. --s3_endpoint_url)."""
    if not isinstance(options, PipelineOptions):
        options = PipelineOptions(list(options))
    FileSystems.set_options(options)


_applied: str | None = None  # the worker options this process's FileSystems were given


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
        FileSystems.set_options(PipelineOptions.from_dictionary(options))
        _applied = key


def read_lines(path: str):
    """The lines of a text file on any scheme, streamed (without their line ends)."""
    opener = (open(path, "rb") if is_local(path)  # noqa: SIM115 - closed by the with below
              else FileSystems.open(path, compression_type=_RAW))
    with opener as fh:
        for line in fh:
            yield line.rstrip(b"\r\n").decode("utf-8")


def is_local(path: str) -> bool:
    return FileSystems.get_scheme(str(path)) in (None, "file")


def check_scheme(path: str) -> None:
    """Raise ValueError naming the missing extra when Beam has no filesystem for `path`."""
    FileSystems.get_filesystem(str(path))


def join(base: str, *parts: str) -> str:
    base = str(base)
    return os.path.join(base, *parts) if is_local(base) else FileSystems.join(base, *parts)


def exists(path: str) -> bool:
    return os.path.exists(path) if is_local(path) else FileSystems.exists(path)


def read_bytes(path: str) -> bytes:
    """Raises FileNotFoundError when `path` does not exist, on every scheme."""
    if is_local(path):
        with open(path, "rb") as fh:
            return fh.read()
    if not FileSystems.exists(path):
        raise FileNotFoundError(path)
    with FileSystems.open(path, compression_type=_RAW) as fh:
        return fh.read()


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
    with FileSystems.create(path, compression_type=_RAW) as fh:
        fh.write(data)


def make_folder(path: str) -> None:
    """Create a local folder (and its parents); object stores need none."""
    if is_local(path):
        os.makedirs(path, exist_ok=True)


def read_parquet(path: str, **kwargs) -> pa.Table:
    """pq.read_table on any scheme (local: by path, so pyarrow memory-maps it)."""
    if is_local(path):
        return pq.read_table(path, **kwargs)
    # Whole into memory first: pyarrow reading through a Python stream can abort the
    # interpreter at exit ("terminate called without an active exception"), even on one thread.
    return pq.read_table(pa.BufferReader(read_bytes(path)), **kwargs)


def write_parquet(table: pa.Table, path: str, **kwargs) -> int:
    """Write a Parquet file atomically (local: temp name, then rename); returns its size."""
    if is_local(path):
        tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
        pq.write_table(table, tmp, **kwargs)
        os.replace(tmp, path)
        return os.path.getsize(path)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **kwargs)
    write_bytes(path, buffer.getvalue())
    return buffer.tell()


def size(path: str) -> int:
    if is_local(path):
        return os.path.getsize(path)
    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def list_tree(folder: str) -> list[str]:
    """Paths of every file under `folder`, relative to it (posix separators)."""
    folder = str(folder).rstrip("/")
    if is_local(folder):
        if not os.path.isdir(folder):
            return []
        return sorted(os.path.relpath(os.path.join(d, f), folder).replace(os.sep, "/")
                      for d, _, files in os.walk(folder) for f in files)
    found = FileSystems.match([folder + "/**"])[0].metadata_list
    return sorted(m.path[len(folder) + 1:] for m in found)


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
        FileSystems.delete(paths)


def delete(path: str) -> None:
    """Remove one file; missing is fine."""
    if is_local(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    elif FileSystems.exists(path):
        FileSystems.delete([path])


def delete_files(paths: Sequence[str]) -> None:
    """Remove several files at once (one batched request on object stores); missing is fine."""
    local = [p for p in paths if is_local(p)]
    for path in local:
        delete(path)
    remote = [p for p in paths if not is_local(p)]
    if remote:
        FileSystems.delete(remote)


def move_tree(source: str, target: str) -> None:
    """Move a folder: one atomic rename locally; object by object elsewhere."""
    if is_local(source):
        os.rename(source, target)
        _fsync_dir(os.path.dirname(target))
        return
    names = list_tree(source)
    if names:
        FileSystems.rename([join(source, n) for n in names], [join(target, n) for n in names])


def link_or_copy(source: str, target: str) -> None:
    """A hard link where the filesystem allows it, else a copy (server-side on object stores)."""
    if is_local(source):
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return
    FileSystems.copy([source], [target])


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
