"""The search stage: reading a snapshot and answering queries. `reader.py` is `Index` (the live
snapshot of an output folder: its vectors, rows and lexical index, and `search`), `ranking.py`
the pure parts of an answer (the request, filters, exact vector ranking, score fusion,
snippets) and `ann.py` the approximate vector index (built at the commit, read by searches).
Nothing here imports Apache Beam.

Example::

    from beam_pipeline.search import Index
    for hit in Index.open("index").search("where do we retry a failed upload?", k=5):
        print(hit["path"], hit["line_start"], round(hit["score"], 2))
"""

from .ranking import (
    FUSIONS,
    MODES,
    NAME_WEIGHT,
    QUESTION_WEIGHT,
    RRF_K,
    SAMPLE_STRIDE,
    Piece,
    SearchError,
    SearchRequest,
    allowed_paths,
    file_text,
    fuse,
    nth_best,
    relative,
    top_rows,
    whole_lines,
)
from .reader import VECTOR_CACHE, Index, IndexReadError, shard_names

__all__ = ["FUSIONS", "MODES", "NAME_WEIGHT", "QUESTION_WEIGHT", "RRF_K", "SAMPLE_STRIDE",
           "VECTOR_CACHE", "Index", "IndexReadError", "Piece", "SearchError", "SearchRequest",
           "allowed_paths", "file_text", "fuse", "nth_best", "relative", "shard_names",
           "top_rows", "whole_lines"]
