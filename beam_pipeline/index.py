"""Index: read the live snapshot of an output (a folder or a URL Beam's FileSystems reads),
and search it.

Reading never executes anything from the index (JSON and Parquet only), and a manifest that
names a shard outside its own snapshot folder is refused.

Example::

    index = Index.open("path/to/index")
    for hit in index.search("parse json config", k=5):
        print(hit["path"], hit["line_start"], hit["score"])
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import pyarrow as pa

from . import storage
from .embedders import Embedder, get_embedder
from .schema import CURRENT_FILE, FILES_TABLE, FORMAT_VERSION, MANIFEST_FILE, SNAPSHOTS_DIR

_SHARD_NAME = re.compile(r"^part-[0-9A-Za-z_-]+\.parquet$")
_SNAPSHOT_NAME = re.compile(r"^[0-9A-Za-z._-]+$")
VECTOR_CACHE = "_vectors.npy"


class IndexReadError(Exception):
    """The output folder holds no usable index."""


def shard_names(manifest: dict) -> list[str]:
    """The manifest's shard file names, refusing any that could leave the snapshot folder."""
    shards = manifest.get("shards", [])
    if not isinstance(shards, list):
        raise IndexReadError(f"manifest shards is not a list: {shards!r:.80}")
    names = []
    for shard in shards:
        name = shard.get("path") if isinstance(shard, dict) else None
        if not isinstance(name, str) or not _SHARD_NAME.match(name):
            raise IndexReadError(f"manifest names an invalid shard path {name!r}")
        names.append(name)
    return names


class Index:
    """The live snapshot of an output folder."""

    def __init__(self, directory: str, manifest: dict):
        self.directory = directory
        self.manifest = manifest
        self.snapshot_id: str = manifest.get("snapshot_id", os.path.basename(directory))
        self.shards = shard_names(manifest)

    @classmethod
    def open(cls, out: str | os.PathLike, filesystem_flags: Sequence[str] = ()) -> Index:
        """The live snapshot of `out`. `filesystem_flags` are Beam's options for a remote
        filesystem (e.g. ["--s3_endpoint_url=…"]); they apply to this process's FileSystems."""
        if filesystem_flags:
            storage.use_options(filesystem_flags)
        out = os.fspath(out)
        current = storage.join(out, CURRENT_FILE)
        try:
            snapshot_id = storage.read_bytes(current).decode("utf-8").strip()
        except FileNotFoundError:
            raise IndexReadError(f"{out} holds no index (no {CURRENT_FILE} file)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexReadError(f"{current} is unreadable ({exc})") from None
        if not _SNAPSHOT_NAME.match(snapshot_id):
            raise IndexReadError(f"{current} names an invalid snapshot {snapshot_id!r}")
        directory = storage.join(out, SNAPSHOTS_DIR, snapshot_id)
        try:
            manifest = json.loads(storage.read_bytes(storage.join(directory, MANIFEST_FILE)))
        except (OSError, ValueError) as exc:
            raise IndexReadError(f"snapshot {snapshot_id}: unreadable manifest ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
            raise IndexReadError(f"snapshot {snapshot_id}: unsupported manifest format "
                             f"{manifest.get('format_version') if isinstance(manifest, dict) else manifest!r}")
        return cls(directory, manifest)

    @property
    def fingerprint(self) -> dict:
        return self.manifest["fingerprint"]

    @property
    def dim(self) -> int:
        return int(self.fingerprint["embedder"]["dim"])

    def shard_path(self, name: str) -> str:
        return storage.join(self.directory, name)

    def files_table(self) -> pa.Table:
        return storage.read_parquet(storage.join(self.directory, FILES_TABLE))

    def embedder(self) -> Embedder:
        """The snapshot's own embedder, rebuilt from its fingerprint."""
        spec = self.fingerprint["embedder"]
        config = self.manifest.get("embedder_config") or {}
        if not isinstance(config, dict):
            raise IndexReadError("manifest embedder_config is not a mapping")
        try:
            embedder = get_embedder(spec["name"], dim=int(spec["dim"]), **config)
        except ValueError as exc:
            raise IndexReadError(f"cannot rebuild the index's embedder: {exc}") from None
        if embedder.fingerprint() != spec:
            raise IndexReadError(f"this installation's {spec['name']} embedder "
                             f"({embedder.fingerprint()}) differs from the index's ({spec}); "
                             "re-index with --full")
        embedder.load()
        return embedder

    @cached_property
    def _rows(self) -> tuple[np.ndarray, pa.Table]:
        """All vectors as one contiguous float32 matrix, and the columns a hit shows.

        The matrix is cached in the snapshot folder (`_vectors.npy`, memory-mapped on later
        opens) when the folder is writable; snapshots never change, so the cache stays valid.
        """
        metas = [storage.read_parquet(self.shard_path(name),
                                      columns=["path", "line_start", "line_end"])
                 for name in self.shards]
        counts = [m.num_rows for m in metas]
        shard_ids = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        rows = np.concatenate([np.arange(n, dtype=np.int64) for n in counts]) if counts else []
        meta = (pa.concat_tables(metas) if metas else pa.table({"path": pa.array([], pa.string())}))
        meta = meta.append_column("shard", _int_array(shard_ids))
        meta = meta.append_column("row", _int_array(np.asarray(rows, np.int64)))
        return self._matrix(sum(counts)), meta

    def _matrix(self, total: int) -> np.ndarray:
        local = storage.is_local(self.directory)
        cache = os.path.join(self.directory, VECTOR_CACHE)
        try:
            matrix = np.load(cache, mmap_mode="r", allow_pickle=False) if local else None
            if matrix is not None and matrix.shape == (total, self.dim) \
                    and matrix.dtype == np.float32:
                return matrix
        except (OSError, ValueError):
            pass
        matrix = np.empty((total, self.dim), dtype=np.float32)
        offset = 0
        for name in self.shards:
            vectors = storage.read_parquet(self.shard_path(name), columns=["vector"])["vector"]
            for chunk in vectors.chunks:
                flat = chunk.values.to_numpy(zero_copy_only=False)
                matrix[offset:offset + len(chunk)] = flat.reshape(len(chunk), self.dim)
                offset += len(chunk)
        if local:  # a remote index is searched without a cache
            tmp = os.path.join(self.directory, f".{VECTOR_CACHE}.{os.getpid()}.tmp")
            try:
                with open(tmp, "wb") as fh:
                    np.save(fh, matrix, allow_pickle=False)
                os.replace(tmp, cache)
            except OSError:
                storage.delete(tmp)  # a read-only index is searched without a cache
        return matrix

    def search(self, text: str, k: int = 10) -> list[dict]:
        """The k rows most similar to `text` (cosine), best first."""
        matrix, meta = self._rows
        if k < 1 or not len(matrix):
            return []
        query = self.embedder().embed([text])[0]
        scores = matrix @ query
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        hits = meta.take(_int_array(np.asarray(top, np.int64)))
        shards = [self.shards[i] for i in hits["shard"].to_pylist()]
        contents = self._contents(shards, hits["row"].to_pylist())
        return [
            {"path": path, "line_start": start, "line_end": end, "score": float(scores[i]),
             "content": content}
            for i, path, start, end, content in zip(
                top, hits["path"].to_pylist(), hits["line_start"].to_pylist(),
                hits["line_end"].to_pylist(), contents)
        ]

    def _contents(self, shards: list[str], rows: list[int]) -> list[str]:
        by_shard: dict[str, list[int]] = {}
        for shard, row in zip(shards, rows):
            by_shard.setdefault(shard, []).append(row)
        found = {}
        for shard, wanted in by_shard.items():
            column = storage.read_parquet(self.shard_path(shard), columns=["content"])["content"]
            for row, text in zip(wanted, column.take(_int_array(np.asarray(wanted, np.int64))).to_pylist()):
                found[(shard, row)] = text
        return [found[(s, r)] for s, r in zip(shards, rows)]


def _int_array(values: np.ndarray) -> pa.Array:
    """An Arrow array over a numpy integer array's buffer. pa.array() first asks whether its
    argument is a pandas object, which imports pandas (0.3 s of a 0.7 s `search`) whenever it
    is installed, and Beam installs it."""
    data = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(data.dtype), len(data),
                                 [None, pa.py_buffer(data)])
