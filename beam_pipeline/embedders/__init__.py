"""Embedders behind one interface, selected by name (`--embedder NAME`)."""

from __future__ import annotations

from collections.abc import Callable

from .base import Embedder, EmbeddingError
from .hashing import HashingEmbedder
from .minilm import MiniLMEmbedder
from .remote import OpenAIEmbedder, VoyageEmbedder

_REGISTRY: dict[str, Callable[..., Embedder]] = {
    "hashing": HashingEmbedder,
    "minilm": MiniLMEmbedder,
    "openai": OpenAIEmbedder,
    "voyage": VoyageEmbedder,
}


def get_embedder(name: str, **params) -> Embedder:
    """An embedder by name, e.g. `get_embedder("hashing", dim=384)`; None params are dropped."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown embedder {name!r}; known: {known}") from None
    try:
        return factory(**{k: v for k, v in params.items() if v is not None})
    except TypeError as exc:
        raise ValueError(f"embedder {name!r}: {exc}") from None


__all__ = ["Embedder", "EmbeddingError", "HashingEmbedder", "MiniLMEmbedder", "OpenAIEmbedder", "VoyageEmbedder",
           "get_embedder"]
