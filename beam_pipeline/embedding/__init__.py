"""The embedding stage: chunk texts become vectors. `calls.py` calls an embedder (a batch
that fails is split until the text that fails stands alone; a GIL-bound embedder runs in
helper processes), `transform.py` is the Beam step, `EmbedChunks` (batches that span files,
a pool of calls in flight, the resume journal), the only module here importing Beam. The
embedders themselves are `beam_pipeline.embedders`, where users add their own.

Nothing is imported here: `python -m beam_pipeline.embedding.calls` starts the helper
processes, and a package that imported `calls` first would run it twice (runpy warns).
"""
