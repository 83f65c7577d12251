"""The embedding stage: chunk texts become vectors. `calls.py` calls an embedder (a batch
that fails is split until the text that fails stands alone; a GIL-bound embedder runs in
helper processes), `transform.py` is the Beam step, `EmbedChunks` (batches that span files,
a pool of calls in flight, the resume journal), the only module here importing Beam. The
embedders themselves are `beam_pipeline.embedders`, where users add their own.
"""

from .calls import (
    EmbedderProcesses,
    checked_embed,
    embed_isolating,
    start_helper,
    timed_embed,
)

__all__ = ["EmbedderProcesses", "checked_embed", "embed_isolating", "start_helper",
           "timed_embed"]
