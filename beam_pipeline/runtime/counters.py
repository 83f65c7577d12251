"""The Beam metric counters every stage counts into (namespace `beam_pipeline`).

The launcher sums them into ProcessingStats (beam_pipeline/run/stats.py) and checks those that
the pipeline's own outputs also tell.
"""

from __future__ import annotations

NAMESPACE = "beam_pipeline"
SKIP_PREFIX = "skipped_"
FALLBACK_PREFIX = "fixed_chunks_"  # files the syntax chunker left to the fixed one, by reason

FILES_PROCESSED = "files_processed"
FAILED_FILES = "failed_files"
CHUNKS_CREATED = "chunks_created"
CHUNKS_EMBEDDED = "chunks_embedded"
CHUNKS_REUSED = "chunks_reused"
CHUNK_ERRORS = "chunk_errors"
EMBED_BATCHES = "embed_batches"
TOTAL_SIZE = "total_size"
LEGACY_ENCODING = "legacy_encoding"
ROWS_WRITTEN = "rows_written"
SHARDS_WRITTEN = "shards_written"


def counter(name: str):
    from apache_beam.metrics import Metrics  # in DoFns only: the launcher's plan needs no Beam

    return Metrics.counter(NAMESPACE, name)


def skip_counter(reason: str):
    return counter(SKIP_PREFIX + reason)


def fallback_counter(reason: str):
    return counter(FALLBACK_PREFIX + reason)
