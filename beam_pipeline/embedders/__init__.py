"""Embedders behind one interface, selected by name (`--embedder NAME`)."""

from __future__ import annotations

from collections.abc import Callable

from .base import Embedder, EmbeddingError
from .hashing import HashingEmbedder
from .remote import OpenAIEmbedder, VoyageEmbedder

_REGISTRY: dict[str, Callable[..., Embedder]] = {
    "hashing": HashingEmbedder,
    "openai": OpenAIEmbedder,
    "voyage": VoyageEmbedder,
}


def get_embedder(name: str, **params) -> Embedder:
    """An embedder by name, e.g. `get_embedder("hashing", dim=384)`; None params are dropped."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    try:
        return factory(**{k: v for k, v in params.items() if v is not None})
    except TypeError as exc:
        raise ValueError(f"embedder {name!r}: {exc}") from None


__all__ = ["Embedder", "EmbeddingError", "HashingEmbedder", "OpenAIEmbedder", "VoyageEmbedder",
           "get_embedder"]
