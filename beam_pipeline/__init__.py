"""beam_pipeline: index a code repository into Parquet vector shards with Apache Beam.

Example::

    from beam_pipeline import run_index
    stats = run_index("path/to/repo", "path/to/index")
    print(stats.files_processed, stats.chunks_created)
"""

from __future__ import annotations

import importlib

from . import _moved

__version__ = "0.1.0"
_moved.install()

# Lazy, so that `beam-index` can set up logging before apache_beam is imported (its import
# logs a warning about optional GCP clients that users should not see).
_EXPORTS = {
    "BeamIndexError": "errors",
    "FileProcessingResult": "processor",
    "HighThroughputProcessor": "processor",
    "Index": "search.reader",
    "IndexFiles": "run.pipeline",
    "IndexSettings": "run.settings",
    "NothingCommitted": "run.indexing",
    "ReadFileList": "run.pipeline",
    "RunRequest": "run.indexing",
    "run_index": "run.indexing",
    "StatsMismatch": "run.indexing",
    "ProcessingStats": "run.stats",
}
__all__ = ["BeamIndexError", "FileProcessingResult", "HighThroughputProcessor", "Index",
           "IndexFiles", "IndexSettings", "NothingCommitted", "ProcessingStats", "ReadFileList",
           "RunRequest", "StatsMismatch", "run_index"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
