"""Transforms hand back their outputs as a NamedTuple of PCollections (as Beam's RunInference
returns its dead-letter outputs): `chunked.chunks`, not `chunked["chunks"]`. Beam tags each
output by its field's name.
"""

from __future__ import annotations

import warnings


def by_name(outputs: tuple, key):
    """`outputs["name"]`, as when transforms returned dicts: kept for one release, warning;
    a position still indexes the tuple. Each output NamedTuple's `__getitem__`."""
    if isinstance(key, str):
        warnings.warn(f"{type(outputs).__name__}[{key!r}] is deprecated: use .{key}",
                      DeprecationWarning, stacklevel=2)
        try:
            return getattr(outputs, key)
        except AttributeError:
            raise KeyError(key) from None
    return tuple.__getitem__(outputs, key)
