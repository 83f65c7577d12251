"""Building a snapshot's lexical index: `LexicalBuilder` (a local tantivy index, carried
forward from the previous snapshot's), `ShardFollower` (adds committed shards as they appear
in staging) and `export` (the files into the snapshot, and their manifest entry).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from typing import Self

import pyarrow as pa
import pyarrow.parquet as pq

from ..layout.schema import chunk_id
from ..source import storage
from ..source.language import detect_language
from .fields import (
    LEXICAL_DIR,
    ROWS_COLUMNS,
    WRITER_HEAP,
    LexicalError,
    fetch,
    manifest_entry,
    open_index,
    word_text,
)


class LexicalBuilder:
    """A lexical index being written in a local scratch folder, then saved into a snapshot.

    `base` is a previous snapshot's folder and its manifest entry: its index is copied and
    updated rather than rebuilt.
    """

    def __init__(self, base: tuple[str, dict] | None = None):
        self._dir = tempfile.mkdtemp(prefix="beam-index-lexical-")
        if base is not None:
            fetch(base[0], base[1], self._dir)
            # tantivy collects only the files it lists as its own (.managed.json, read when
            # the index opens), which a snapshot does not carry: unclaimed, every segment the
            # base had merged away was copied into each later snapshot (a watch's 30th
            # one-file commit copied 349 files for 8 segments).
            _claim_files(self._dir)
        self._index = open_index(self._dir, create=base is None)
        self._writer = self._index.writer(heap_size=WRITER_HEAP,
                                          num_threads=min(4, os.cpu_count() or 1))
        self.added = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def delete_paths(self, paths: Iterable[str]) -> None:
        """Drop every document of these files."""
        for path in paths:
            self._writer.delete_documents_by_term("path", path)

    def add_rows(self, table: pa.Table | pa.RecordBatch, shard: str) -> None:
        """One document per row of a table with columns id, path, language, content."""
        self._add(zip(*(table.column(name).to_pylist() for name in ROWS_COLUMNS)), shard=shard)

    def add_chunks(self, path: str, digest: str, chunks: Sequence[tuple[int, str]]) -> None:
        """The documents of one file's chunks `(index, text)`, whose content hash is `digest`:
        the rows its shard will hold (feed.py), without their shard's name."""
        language = detect_language(path)
        self._add((chunk_id(path, digest, index), path, language, text)
                  for index, text in chunks)

    def _add(self, rows: Iterable[tuple[str, str, str, str]], **shard: str) -> None:
        """One document per (row id, path, language, content)."""
        import tantivy

        add, document, added = self._writer.add_document, tantivy.Document, 0
        for row_id, path, language, content in rows:
            add(document(id=row_id, path=path, language=language, words=word_text(content),
                         parts=content, place=path, **shard))
            added += 1
        self.added += added

    def add_shard(self, path: str, name: str, only: set[str] | None = None) -> None:
        """The rows of one shard (of the files in `only`, when given), a row group at a time
        (a shard's text is never all held)."""
        import pyarrow.compute as pc

        wanted = None if only is None else pa.array(sorted(only), pa.string())
        with storage.open_read(path) as fh:
            reader = pq.ParquetFile(fh)
            for group in range(reader.num_row_groups):
                rows = reader.read_row_group(group, columns=ROWS_COLUMNS)
                if wanted is not None:
                    rows = rows.filter(pc.is_in(rows.column("path"), value_set=wanted))
                self.add_rows(rows, name)

    def drop_shards(self, names: Iterable[str]) -> None:
        """Drop the documents added from these shards."""
        for name in names:
            self._writer.delete_documents_by_term("shard", name)

    @property
    def directory(self) -> str:
        return self._dir

    def save_to(self, snapshot_dir: str) -> dict:
        """Commit, then write the index files into `snapshot_dir`/lexical/; the manifest entry."""
        return export(self._dir, self.commit(), snapshot_dir)

    def commit(self) -> int:
        """Commit what was added and deleted, merge, drop unused files; the document count.
        Nothing can be added after."""
        self._writer.commit()
        self._writer.wait_merging_threads()
        self._index.reload()
        docs = self._index.searcher().num_docs
        self._writer = None
        self._garbage_collect()
        return docs

    def _garbage_collect(self) -> None:
        # Files of merged-away segments and superseded deletes stay until a writer collects
        # them; a fresh writer on the committed index does.
        writer = self._index.writer(heap_size=15_000_000, num_threads=1)
        writer.garbage_collect_files()
        writer.wait_merging_threads()

    def close(self) -> None:
        self._writer = self._index = None
        shutil.rmtree(self._dir, ignore_errors=True)


_MANAGED = ".managed.json"  # tantivy's list of the files its garbage collection may delete


def _claim_files(folder: str) -> None:
    """List every index file in `folder` as tantivy's to collect, so the ones the committed
    index no longer uses (merged-away segments, superseded deletes) are removed."""
    names = [name for name in os.listdir(folder)
             if not name.startswith(".") and os.path.isfile(os.path.join(folder, name))]
    managed = os.path.join(folder, _MANAGED)
    with open(managed, "w", encoding="utf-8") as fh:
        json.dump(sorted(names), fh)


def export(folder: str, docs: int, snapshot_dir: str) -> dict:
    """A committed index's files (`folder`, local) into `snapshot_dir`/lexical/; the manifest
    entry."""
    files = []
    for name in sorted(os.listdir(folder)):
        source = os.path.join(folder, name)
        if not os.path.isfile(source) or name.startswith("."):
            continue  # tantivy's lock files
        target = storage.join(snapshot_dir, LEXICAL_DIR, name)
        if storage.is_local(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(source, target)
        else:
            with open(source, "rb") as fh:
                storage.write_bytes(target, fh.read())
        files.append({"name": name, "bytes": os.path.getsize(source),
                      "sha256": storage.sha256(source)})
    return manifest_entry(files, docs)


_SHARD_NAME = re.compile(r"^part-[0-9A-Za-z_-]+\.parquet$")
# How often the staging folder is listed for new shards: a local listing costs nothing, so a
# shard written as the pipeline ends is tokenised while Beam finishes rather than after it
# (a remote embedder's run of 10,852 chunks: 1.42-1.43x its latency limit against 1.47-1.53x
# at 0.5 s); an object store's listing is a request.
_POLL_LOCAL_S = 0.1
_POLL_STORE_S = 0.5


class ShardFollower:
    """Adds the pipeline's shards to a LexicalBuilder as they appear in the staging folder.

    Shards are renamed into place whole (write.py), so a listed shard is complete. The
    lexical index is built while the pipeline still assembles and writes (tantivy tokenises
    on its own threads, without the GIL) instead of after it. Names passed to `claim` (rows
    carried from a snapshot whose index already holds them) are skipped; `finish` adds what
    the last listing missed and drops the shards that were not committed.

    Example::

        follower = ShardFollower(builder, staging).start()
        ...                                     # the pipeline runs
        follower.finish(staged_names)
    """

    def __init__(self, builder: LexicalBuilder, staging: str):
        self.builder = builder
        self.staging = staging
        self._claimed: set[str] = set()
        self._added: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one shard at a time into the builder
        self._thread = threading.Thread(target=self._follow, name="lexical", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> ShardFollower:
        self._thread.start()
        return self

    def claim(self, name: str) -> None:
        """A shard that must not be added (call before it exists)."""
        self._claimed.add(name)

    def _follow(self) -> None:
        try:
            interval = _POLL_LOCAL_S if storage.is_local(self.staging) else _POLL_STORE_S
            while not self._stop.wait(interval):
                self._add_new(None)
        except Exception as exc:  # noqa: BLE001 - re-raised by finish(), in the caller
            self._error = exc

    def _add_new(self, only: set[str] | None) -> None:
        names = [name for name in storage.list_names(self.staging) if _SHARD_NAME.match(name)]
        for name in names:
            if self._stop.is_set() and only is None:
                return
            with self._lock:
                if name in self._added or name in self._claimed or \
                        (only is not None and name not in only):
                    continue
                self.builder.add_shard(storage.join(self.staging, name), name)
                self._added.add(name)

    def finish(self, committed: set[str]) -> None:
        """Stop following; the builder then holds exactly the `committed` shards' rows."""
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._add_new(committed)
        missing = committed - self._added - self._claimed
        if missing:
            raise LexicalError(f"staged shards not found for the lexical index: "
                               f"{sorted(missing)[:3]}")
        self.builder.drop_shards(self._added - committed)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
