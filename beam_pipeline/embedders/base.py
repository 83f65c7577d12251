"""The one interface every embedder implements."""

from __future__ import annotations

import abc

import numpy as np

from ..errors import RunError


class EmbeddingError(RunError):
    """An embedder could not embed a batch; the message says why."""


class ConfigurationError(EmbeddingError):
    """One mistake for the whole run, not a fault of a chunk: a bad key (401/403), an unknown
    model (404), vectors of another dimension than the index's, an endpoint that does not
    answer embeddings. Never split per chunk: the run stops, naming it."""


class Embedder(abc.ABC):
    """Turns texts into float32 vectors.

    Instances are pickled to Beam workers, so `__init__` only stores configuration; heavy state
    (a model, a connection pool) is created in `load()`, called once per worker (DoFn.setup).
    """

    name: str
    model: str
    dim: int
    # Do several embed() calls at once finish sooner than one after another? Remote providers:
    # yes, requests overlap. Pure Python (the GIL) or a model using every core: no, they only
    # contend. Only then does the embed concurrency (`vector_thread_count`) put calls on a
    # thread pool, so such an embedder must also be thread-safe.
    parallel_calls: bool = False
    # Is embed() pure-Python work that holds the GIL for the whole call? Then a local run may
    # embed in helper processes (`--embed-processes`), so the embedder and the pipeline's own
    # Python work use two cores.
    gil_bound: bool = False
    # Chunk size to use when none is given (None: the indexer's default).
    default_chunk_size: int | None = None
    # A remote service: asked once (`probe`) before a run embeds anything, so that a
    # configuration error stops the run at its first answer; its `dim` may be learned so.
    probe_first: bool = False
    # Is a vector worth keeping in the resume journal (journal.py) when a run may die? Calls
    # that cost time or money: yes. An embedder faster than reading the journal back: no.
    journal_pays: bool = True
    # An index is often someone else's (a CI artifact, a shared bucket), so its manifest may
    # rebuild only what reaches neither the network nor the environment: `index_config` names
    # the config() keys a search takes from it. `user_config` names those it takes from its
    # user alone (an endpoint, the model sent to it, the variable holding the key);
    # `checked_config`, those among them that decide the vectors, so the index's copy must
    # match them. Any other key an index holds is ignored.
    index_config: tuple[str, ...] = ()
    user_config: tuple[str, ...] = ()
    checked_config: tuple[str, ...] = ()

    def use_threads(self, count: int) -> None:
        """Take the caller's thread count (`vector_thread_count`). Remote providers get it as
        requests in flight from EmbedBatch's pool, so by default there is nothing to do; a
        local model runs that many compute threads."""

    def load(self) -> None:
        """Create per-worker state; the default has none."""

    @abc.abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of shape (len(texts), dim), float32."""

    def config(self) -> dict:
        """Constructor parameters beyond `dim` that rebuild this embedder for search (never a
        secret); stored in the manifest."""
        return {}

    def take_counts(self) -> dict[str, int]:
        """Counts since the last call (calls, texts, retries, failures), for Beam metrics."""
        return {}

    def probe(self) -> int:
        """Embed one short text and return its dimension (raises ConfigurationError)."""
        self.load()
        return int(self.embed(["def probe():\n    return 'beam-index'\n"]).shape[1])

    def fingerprint(self) -> dict:
        """What decides whether vectors of two runs are comparable."""
        return {"name": self.name, "model": self.model, "dim": self.dim}


class Memo(dict):
    """key → compute(key), computed on first lookup; lets `map(memo.__getitem__, keys)` run in C."""

    def __init__(self, compute):
        super().__init__()
        self._compute = compute

    def __missing__(self, key: str) -> int:
        value = self[key] = self._compute(key)
        return value
