"""ProcessingStats, built from the Beam metric counters of a run and checked against its outputs.

Every DoFn counts into the `beam_pipeline` namespace; the launcher sums the counters of the
finished run (Beam may report one result per step, so results are always summed) and adds what
only it knows: discovery skips, times, the commit outcome. The counters that the pipeline's
own outputs also tell (the files table and the shard row counts) must agree with them before
anything is committed; a runner that reports no metrics gets its stats from those outputs.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import _moved
from ..runtime.counters import (
    CHUNK_ERRORS,
    CHUNKS_CREATED,
    CHUNKS_EMBEDDED,
    CHUNKS_REUSED,
    EMBED_BATCHES,
    FAILED_FILES,
    FALLBACK_PREFIX,
    FILES_PROCESSED,
    LEGACY_ENCODING,
    NAMESPACE,
    ROWS_WRITTEN,
    SHARDS_WRITTEN,
    SKIP_PREFIX,
    TOTAL_SIZE,
)


def sum_counters(result) -> dict[str, int] | None:
    """Sum every counter of our namespace over all steps (committed, else attempted); None when
    the runner reports no metrics (its result raises NotImplementedError)."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except NotImplementedError:
        return None
    totals: Counter = Counter()
    for item in query["counters"]:
        value = item.committed if item.committed is not None else item.attempted
        totals[item.key.metric.name] += value or 0
    return dict(totals)


# What the outputs tell, by the counter that must agree with it.
CHECKED = (FILES_PROCESSED, FAILED_FILES, CHUNKS_CREATED, TOTAL_SIZE, ROWS_WRITTEN,
           SHARDS_WRITTEN)


def output_counters(records, shards: list[dict]) -> dict[str, int]:
    """The counters a run's outputs imply: `records` is the pipeline's files table (path,
    size, total_chunks, status, error as Arrow columns), `shards` its shard records."""
    status = records["status"].to_pylist()
    sizes = records["size"].to_pylist()
    chunks = records["total_chunks"].to_pylist()
    errors = records["error"].to_pylist()
    counts: Counter = Counter()
    for state, size, total, error in zip(status, sizes, chunks, errors):
        if state == "indexed":
            counts[FILES_PROCESSED] += 1
            counts[TOTAL_SIZE] += size
            counts[CHUNKS_CREATED] += total
        elif state == "failed":
            counts[FAILED_FILES] += 1
        elif state == "skipped":
            counts[SKIP_PREFIX + (error or "unknown")] += 1
    counts[ROWS_WRITTEN] = sum(s["rows"] for s in shards)
    counts[SHARDS_WRITTEN] = len(shards)
    return {name: counts[name] for name in CHECKED} | {
        k: v for k, v in counts.items() if k.startswith(SKIP_PREFIX)}


def contradictions(outputs: dict[str, int]) -> list[str]:
    """Where the outputs contradict themselves: every chunk of an indexed file is one row."""
    if outputs[ROWS_WRITTEN] != outputs[CHUNKS_CREATED]:
        return [(f"the shards hold {outputs[ROWS_WRITTEN]} rows but the files table counts "
                 f"{outputs[CHUNKS_CREATED]} chunks")]
    return []


def disagreements(counters: dict[str, int], outputs: dict[str, int]) -> list[str]:
    """Where the metrics and the outputs differ; empty when they agree."""
    problems = []
    names = set(CHECKED) | {k for k in (*counters, *outputs) if k.startswith(SKIP_PREFIX)}
    for name in sorted(names):
        if counters.get(name, 0) != outputs.get(name, 0):
            problems.append(f"{name} {counters.get(name, 0)} in the metrics, "
                            f"{outputs.get(name, 0)} in the outputs")
    return problems


@dataclass
class ProcessingStats:
    """Outcome of one indexing run; the first seven fields are those of the replaced system."""

    files_processed: int = 0
    chunks_created: int = 0
    failed_files: int = 0
    total_size: int = 0
    start_time: float = field(default_factory=time.time)
    end_time: float = 0.0
    cancelled: bool = False
    committed: bool = False
    snapshot_id: str | None = None
    skipped_files: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    legacy_encoding_files: int = 0
    # --chunker syntax: files cut by the fixed-size chunker instead, by reason.
    fixed_chunks_by_reason: dict[str, int] = field(default_factory=dict)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    journal_vectors: int = 0  # vectors an unfinished run had journaled, offered for reuse
    chunk_errors: int = 0
    embed_batches: int = 0
    rows_written: int = 0
    shards_written: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    # Re-indexing: what the plan found, and what happened to changed files that failed.
    rebuild_reason: str | None = None
    files_added: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    stale: list[dict[str, str]] = field(default_factory=list)
    up_to_date: bool = False
    chunks_to_embed: int | None = None  # dry runs only
    pruned: list[str] = field(default_factory=list)
    # The compatibility face's call parameters, as the replaced system reported them.
    vector_thread_count: int | None = None
    batch_size: int | None = None
    counters: dict[str, int] = field(default_factory=dict)  # the run's Beam counters, as summed
    # "metrics" (Beam's, checked against the outputs) or "outputs" (the runner has no metrics:
    # embedding counters such as chunks_embedded are then unknown and stay 0).
    stats_source: str | None = None
    progress_route: str | None = None  # "udp" (local modes) or "event files" (through OUT)
    progress_events: int = 0
    # Progress messages and events refused: unsigned, unreadable, or more files than the run has.
    progress_dropped: int = 0

    @property
    def duration(self) -> float:
        end = self.end_time or time.time()
        return max(0.0, end - self.start_time)

    @property
    def files_per_second(self) -> float:
        return self.files_processed / self.duration if self.duration > 0 else 0.0

    def add_counters(self, counters: dict[str, int]) -> None:
        self.counters = dict(sorted((Counter(self.counters) + Counter(counters)).items()))
        self.files_processed += counters.get(FILES_PROCESSED, 0)
        self.failed_files += counters.get(FAILED_FILES, 0)
        self.chunks_created += counters.get(CHUNKS_CREATED, 0)
        self.chunks_embedded += counters.get(CHUNKS_EMBEDDED, 0)
        self.chunks_reused += counters.get(CHUNKS_REUSED, 0)
        self.chunk_errors += counters.get(CHUNK_ERRORS, 0)
        self.embed_batches += counters.get(EMBED_BATCHES, 0)
        self.total_size += counters.get(TOTAL_SIZE, 0)
        self.legacy_encoding_files += counters.get(LEGACY_ENCODING, 0)
        self.rows_written += counters.get(ROWS_WRITTEN, 0)
        self.shards_written += counters.get(SHARDS_WRITTEN, 0)
        self.add_skips(_by_reason(counters, SKIP_PREFIX))
        self.fixed_chunks_by_reason = _merged(self.fixed_chunks_by_reason,
                                              _by_reason(counters, FALLBACK_PREFIX))

    def record_plan(self, plan) -> None:
        self.files_added, self.files_changed = plan.added, plan.changed
        self.files_unchanged, self.files_deleted = plan.unchanged, plan.deleted

    def add_skips(self, skips: dict[str, int]) -> None:
        self.skipped_by_reason = _merged(self.skipped_by_reason, skips)
        self.skipped_files = sum(self.skipped_by_reason.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration"] = round(self.duration, 3)
        data["files_per_second"] = round(self.files_per_second, 3)
        return data


def _by_reason(counters: dict[str, int], prefix: str) -> dict[str, int]:
    """The counters named `prefix<reason>`, by reason."""
    return {k[len(prefix):]: v for k, v in counters.items() if k.startswith(prefix)}


def _merged(counts: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    """Counts by reason plus more of them, sorted by reason, without zeros."""
    merged = Counter(counts)
    merged.update({k: v for k, v in more.items() if v})
    return dict(sorted(merged.items()))


__getattr__ = _moved.names("beam_pipeline.stats", {name: "runtime.counters" for name in (
    "counter", "fallback_counter", "skip_counter")})
