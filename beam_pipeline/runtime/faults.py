"""Named fault points: `BEAM_INDEX_FAULT=<point>` makes the indexer SIGKILL itself there.

The reliability tests use it to prove that a kill at any step leaves the live snapshot intact
and the next run able to clean up. With the variable unset a point is one dict lookup.

Points, in run order: `after-discovery`, `mid-embedding` (after the first embedded batch),
`after-shard-written`, `mid-carry` (after the first carried-forward shard), `before-manifest`,
`before-current` (snapshot folder in place, `CURRENT` not yet replaced), `after-current`
(committed, old snapshots not yet pruned), `mid-prune` (after the first pruned snapshot).

One point is a share of the run: `embedded:<share>` (e.g. `embedded:0.6`) dies right after the
batch that brings the chunks embedded (and journaled) to that share of the chunks to embed.

Example::

    BEAM_INDEX_FAULT=before-current beam-index index repo -o index   # dies with SIGKILL
    BEAM_INDEX_FAULT=embedded:0.6 beam-index index repo -o index     # dies at 60 % embedded
"""

from __future__ import annotations

import os
import signal
import threading

POINTS = ("after-discovery", "mid-embedding", "after-shard-written", "mid-carry",
          "before-manifest", "before-current", "after-current", "mid-prune")
ENV = "BEAM_INDEX_FAULT"


def fault_point(name: str) -> None:
    """Die here, at once and without cleanup, when BEAM_INDEX_FAULT names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def fraction_point(name: str) -> float | None:
    """The share in BEAM_INDEX_FAULT=<name>:<share>, or None when it names no such point."""
    point, colon, share = os.environ.get(ENV, "").partition(":")
    return float(share) if point == name and colon else None


# Chunks this process may still embed before an `embedded:<share>` kill. It is counted where the
# vectors are made, not from progress events: those lag, and a fast embedder would finish the
# whole run before the launcher saw 60 %. The fault tests run the in-process DirectRunner, so
# the embedding DoFn and the launcher share this module.
_budget: list[int] = []
_budget_lock = threading.Lock()


def arm_embedded(chunks: int) -> None:
    """Die once `chunks` more chunks have been embedded in this process (see `embedded`)."""
    with _budget_lock:
        _budget[:] = [chunks]


def embedded(chunks: int) -> None:
    """Count `chunks` embedded; SIGKILL this process when an armed budget runs out."""
    if not _budget:
        return
    with _budget_lock:
        _budget[0] -= chunks
        if _budget[0] <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
