"""Named fault points: `BEAM_INDEX_FAULT=<point>` makes the indexer SIGKILL itself there.

The reliability tests use it to prove that a kill at any step leaves the live snapshot intact
and the next run able to clean up. With the variable unset a point is one dict lookup.

Points, in run order: `after-discovery`, `mid-embedding` (after the first embedded batch),
`after-shard-written`, `mid-carry` (after the first carried-forward shard), `before-manifest`,
`before-current` (snapshot folder in place, `CURRENT` not yet replaced), `after-current`
(committed, old snapshots not yet pruned), `mid-prune` (after the first pruned snapshot).

Example::

    BEAM_INDEX_FAULT=before-current beam-index index repo -o index   # dies with SIGKILL
"""

from __future__ import annotations

import os
import signal

POINTS = ("after-discovery", "mid-embedding", "after-shard-written", "mid-carry",
          "before-manifest", "before-current", "after-current", "mid-prune")
ENV = "BEAM_INDEX_FAULT"


def fault_point(name: str) -> None:
    """Die here, at once and without cleanup, when BEAM_INDEX_FAULT names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
