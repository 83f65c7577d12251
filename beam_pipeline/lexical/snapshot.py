"""SnapshotLexicon: the lexical index of the snapshot a run is making, built while its pipeline
runs, one of two ways behind one object:

- fed (feed.py): the chunking workers send each file's chunks to a helper process as they cut
  them. Only where the workers share the launcher's host and the staging folder is local (the
  launcher decides: runners.Placement.local).
- following the shards (build.py): a ShardFollower adds each shard as the writers stage it.
  Any runner.

A feed that cannot start, dies or falls behind hands over to following the shards; the run
sees the same object either way. A re-index starts from the base snapshot's index: the
documents of the files whose rows are not carried are deleted first, carried shards are not
added again.

Example::

    with SnapshotLexicon(staging, base=None, deleted=set(), feed=False) as lexicon:
        ...  # the pipeline runs; lexicon.link goes to the chunking step
        entry = lexicon.finish(shards, own=shards, carried=[], committed_files={},
                               pipeline_s=12.0)  # the manifest's "lexical"
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Self

from ..source import storage
from .build import LexicalBuilder, ShardFollower, export
from .feed import FeedBehind, FeedLink, LexicalFeed, finish_timeout
from .fields import LexicalError

log = logging.getLogger(__name__)


class BaseLexiconError(LexicalError):
    """The base snapshot's lexical index is not what its manifest records."""


class SnapshotLexicon:
    """The new snapshot's lexical index while the run makes it.

    Args:
      staging: the snapshot's staging folder (the shards' and the index's).
      base: the base snapshot's (folder, manifest entry) to carry forward, or None.
      deleted: the base's files whose rows are not carried.
      feed: try the fed way first (the local modes with a local staging folder).

    Raises BaseLexiconError when the base's index files are not those its manifest records.
    """

    def __init__(self, staging: str, base: tuple[str, dict] | None,
                 deleted: Collection[str], feed: bool):
        self.staging = staging
        self.base = base
        self.deleted = set(deleted)
        self._feed: LexicalFeed | None = None
        self._builder: LexicalBuilder | None = None
        self._follower: ShardFollower | None = None
        if feed:
            try:
                self._feed = LexicalFeed(base, self.deleted)
                return
            except OSError as exc:  # e.g. no interpreter this user may start
                log.warning("no lexical index helper (%s): built from the shards", exc)
        self._follow_shards()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def fed(self) -> bool:
        """Whether the chunking workers feed it (then `finish` needs `committed_files`)."""
        return self._feed is not None

    @property
    def link(self) -> FeedLink | None:
        """What the chunking workers feed it through; None when it follows the shards."""
        if self._feed is None:
            return None
        try:
            return self._feed.link
        except LexicalError as exc:  # it died starting
            self._abandon_feed(exc)
            return None

    @property
    def claim(self) -> Callable[[str], None] | None:
        """For the shards carried whole from the base: their rows are in the carried index
        already, so the follower must not add them again. None when there is nothing to tell."""
        return self._follower.claim if self.base is not None and self._follower else None

    def finish(self, shards: list[dict], own: list[dict], carried: list[dict],
               committed_files: dict[str, str], pipeline_s: float) -> dict:
        """The index of exactly the committed `shards`, saved into staging; its manifest entry.

        Args:
          shards: every shard the snapshot commits.
          own: those this run's pipeline wrote.
          carried: those carried whole from the base.
          committed_files: path → content hash of each file with rows (the fed way checks
            what it was sent against it).
          pipeline_s: how long the pipeline ran (how long a late feed may take to finish).
        """
        if self._feed is not None:
            try:
                return self._finish_feed(shards, own, carried, committed_files, pipeline_s)
            except (FeedBehind, LexicalError) as exc:  # late, or it died
                self._abandon_feed(exc)
        committed = {s["path"] for s in shards}
        if self.base is not None:
            committed -= {s["path"] for s in carried}
        self._follower.finish(committed)
        return self._builder.save_to(self.staging)

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()
        if self._builder is not None:
            self._builder.close()
        if self._feed is not None:
            self._feed.close()

    def _finish_feed(self, shards: list[dict], own: list[dict], carried: list[dict],
                     committed_files: dict[str, str], pipeline_s: float) -> dict:
        own_names = {s["path"] for s in own}
        # Rows this run did not embed: carried forward (in the base index already, unless it
        # had none) and stale files' previous rows (their documents were deleted at the start).
        taken = {s["path"] for s in carried} if self.base is not None else set()
        whole = [s["path"] for s in shards if s["path"] not in own_names | taken]
        folder, docs = self._feed.finish(
            committed_files,
            [(storage.join(self.staging, name), name) for name in sorted(own_names)],
            [(storage.join(self.staging, name), name) for name in whole],
            timeout=finish_timeout(pipeline_s))
        return export(folder, docs, self.staging)

    def _abandon_feed(self, reason: Exception) -> None:
        log.warning("%s: the lexical index is built from the shards instead", reason)
        self._feed.close(timeout=0)
        self._feed = None
        self._follow_shards()

    def _follow_shards(self) -> None:
        try:
            self._builder = LexicalBuilder(self.base)
        except LexicalError as exc:  # e.g. the base's files are not what it recorded
            if self.base is None:
                raise
            raise BaseLexiconError(str(exc)) from None
        self._builder.delete_paths(self.deleted)
        self._follower = ShardFollower(self._builder, self.staging).start()
