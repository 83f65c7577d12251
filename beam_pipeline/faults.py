"""Named fault points: `BEAM_INDEX_FAULT=<point>` makes the indexer SIGKILL itself there.

The reliability tests use it to prove that a kill at any step leaves the live snapshot intact
and the next run able to clean up. With the variable unset a point is one dict lookup.

Points, in run order: `after-discovery`, `mid-embedding` (after the first embedded batch),
`after-shard-written`, `mid-carry` (after the first carried-forward shard), `before-manifest`,
`before-current` (snapshot folder in place, `CURRENT` not yet replaced), `after-current`
(committed, old snapshots not yet pruned), `mid-prune` (after the first pruned snapshot).

One point is a share of the run: `embedded:<share>` (e.g. `embedded:0.6`) dies once that share
of the chunks to embed has been reported embedded, in whichever stage the run then is.

Example::

    BEAM_INDEX_FAULT=before-current beam-index index repo -o index   # dies with SIGKILL
    BEAM_INDEX_FAULT=embedded:0.6 beam-index index repo -o index     # dies at 60 % embedded
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

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


def kill_when(reached: Callable[[], bool], interval: float = 0.005) -> threading.Thread:
    """A daemon thread that SIGKILLs this process once `reached()` is true."""

    def watch() -> None:
        while not reached():
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="fault", daemon=True)
    thread.start()
    return thread
