"""run_index: one run of the indexer, from discovery to the commit.

The launcher's part: discover (or list) SOURCE, plan against the live snapshot, and commit.
Beam is imported only when there is something to embed, when Beam flags must be checked, or
when a URL needs Beam's filesystems: an up-to-date re-index of a local tree, a dry run's plan
or a refused runner cost no Beam start-up. The pipeline itself is `pipeline.IndexFiles`.

Example::

    stats = run_index("path/to/repo", "path/to/index", IndexSettings.create(batch_size=128))
    print(stats.files_processed, stats.up_to_date)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .. import lexical
from ..chunking.cut import load_chunks
from ..embedders import ConfigurationError, Embedder
from ..embedding import journal
from ..embedding.journal import DEFAULT_MAX_MB as DEFAULT_JOURNAL_MB
from ..errors import NotASourceFolder, RunError, UsageError
from ..layout.schema import FILES_TABLE, INDEXED, PRUNE_GRACE_S, REUSE_TABLE, SPILL_DIR
from ..lexical.snapshot import BaseLexiconError, SnapshotLexicon
from ..runtime import faults
from ..runtime.cancel import CancelToken
from ..runtime.event_files import EVENTS_DIR
from ..runtime.faults import fault_point, fraction_point
from ..runtime.link import RunLink
from ..search import ann
from ..search.reader import shard_names
from ..source import gitindex, storage
from ..source.discover import (
    SECRET_FILES,
    FileEntry,
    SourceError,
    discover_to_file,
    is_url,
    list_explicit_files,
    relative_to_root,
)
from ..source.text import ChunkerConfig, FileSkipped
from ..store import commit, reindex
from ..store.lock import output_lock
from ..store.status import record_caught_up
from . import runners
from . import stats as stats_mod
from .flags import SMALL_RUN_FILES
from .progress import (
    EventFileChannel,
    ProgressChannel,
    ProgressDisplay,
    ProgressTracker,
)
from .settings import IndexSettings
from .stats import ProcessingStats

if TYPE_CHECKING:
    from apache_beam.options.pipeline_options import PipelineOptions

log = logging.getLogger(__name__)

CANCEL_FILE = "_cancel"
FILE_LIST = "_discovered.jsonl"
TODO_LIST = "_todo.jsonl"
DEFAULT_KEEP = 3
JOURNAL_MODES = ("auto", "always", "never")


class StatsMismatch(RunError):
    """The runner's metrics and the pipeline's outputs disagree: nothing may be committed."""


class NothingCommitted(RunError):
    """The run finished but produced nothing that may be committed (e.g. every file failed)."""

    def __init__(self, message: str, stats: ProcessingStats):
        super().__init__(message)
        self.stats = stats




@dataclass(frozen=True)
class RunRequest:
    """How one run is asked for, beyond what shapes the index (IndexSettings); its values are
    checked when it is made (UsageError).

    Example::

        run_index("path/to/repo", "path/to/index", request=RunRequest(full=True, keep=3))
    """

    files: Sequence[str | os.PathLike] | None = None  # an explicit subset; None walks SOURCE
    # Paths gone from SOURCE (a file, or a folder and all under it), dropped from the index;
    # with `files` a change set (what `watch` hears): no walk, the rest carried forward.
    removed: Sequence[str | os.PathLike] | None = None
    full: bool = False
    checksum: bool = False
    follow_symlinks: bool = False  # index what symlinks point to (loops walked once)
    keep: int = DEFAULT_KEEP
    # Snapshots past `keep` are pruned once superseded this long (reindex.prune_snapshots).
    prune_grace_s: float = PRUNE_GRACE_S
    dry_run: bool = False
    announce: Callable[[str], None] = field(default=lambda message: log.info("%s", message))
    cancel: CancelToken = field(default_factory=CancelToken)
    tracker: ProgressTracker = field(default_factory=ProgressTracker)
    progress_stream: TextIO | None = None
    quiet: bool = True
    # A distributed runner gets local SOURCE/OUT paths only when they are mounted at the same
    # path on every worker (--local-paths-on-workers).
    local_paths_on_workers: bool = False
    # In the local modes vectors wait in spill files on their way to the shards; False sends
    # them through the runner's shuffle instead (memory rather than disk; --no-spill).
    spill: bool = True
    # A git work tree's plan takes git's blob ids for tracked, unmodified files (gitindex.py);
    # False decides by size and mtime only (--no-git).
    git: bool = True
    # The resume journal (journal.py): "auto" keeps one for every embedder whose calls cost
    # something (all but static and hashing, whose vectors cost less to compute again than the journal
    # costs every run to write), "always", or "never"; its size cap, and whether each batch
    # is also fsynced (power loss).
    journal: str = "auto"
    journal_max_mb: int = DEFAULT_JOURNAL_MB
    journal_fsync: bool = False
    # Snapshots of at least this many rows also get an approximate vector index (search/ann.py).
    ann_min_rows: int = ann.DEFAULT_MIN_ROWS

    def __post_init__(self):
        if self.keep < 1:
            raise UsageError(f"--keep must be at least 1, got {self.keep}")
        if not self.prune_grace_s >= 0:
            raise UsageError(f"--prune-grace must be at least 0 seconds, got "
                             f"{self.prune_grace_s}")
        if self.journal not in JOURNAL_MODES:
            raise UsageError(f"--journal must be one of {', '.join(JOURNAL_MODES)}, "
                             f"got {self.journal!r}")
        if self.journal_max_mb < 1:
            raise UsageError(f"--journal-max-mb must be at least 1, got {self.journal_max_mb}")
        if self.ann_min_rows < 1:
            raise UsageError(f"--ann-min-rows must be at least 1, got {self.ann_min_rows}")


def run_index(
    source: str | os.PathLike,
    output: str | os.PathLike,
    settings: IndexSettings | None = None,
    request: RunRequest | None = None,
    *,
    pipeline_options: PipelineOptions | Sequence[str] | None = None,
    **fields,
) -> ProcessingStats:
    """Index `source` into `output` and commit a new snapshot; returns the run's stats.

    Against an output whose live snapshot has the same fingerprint only added and changed
    files are embedded; the rest is carried forward.

    Args:
      source: the tree to index: a local folder or a URL on any filesystem Beam has installed
        (gs://, s3://, …; credentials come from `pipeline_options`, e.g. --s3_endpoint_url).
      output: the index folder or URL.
      settings: what shapes the index (IndexSettings: embedder, chunker, sizes); its default
        when None.
      request: how this run is asked for (RunRequest: `files` to index just these, `full`,
        `checksum`, `keep`, `dry_run`, `announce`, `cancel`, `tracker`, the progress display,
        …). Keyword arguments are a shorthand for its fields: `run_index(src, out, full=True)`
        is `run_index(src, out, request=RunRequest(full=True))`.
      pipeline_options: Beam's options or flags (`--runner`, …); none runs the DirectRunner's
        in-process engine.

    Raises (all errors.BeamIndexError): UsageError for a bad request value or a runner that
    loses data or cannot see the paths (runners.RunnerRefused); SourceError for a bad source
    (NotASourceFolder, also a NotADirectoryError, for a path that is no folder); OutputError
    for an unusable output (lock.LockedError when another run holds it, CorruptSnapshotError
    for a base snapshot that cannot be carried); RunError: StatsMismatch when the metrics and
    the outputs disagree, NothingCommitted when the run produced nothing committable (its
    stats attached). A cancelled run (`request.cancel`) commits nothing and returns stats with
    `cancelled=True`.
    """
    settings = settings or IndexSettings.create()
    req = request or RunRequest()
    if fields:
        req = dataclasses.replace(req, **fields)
    # Flags stay a list until a pipeline is built: with none, nothing here imports Beam.
    if not _is_pipeline_options(pipeline_options):
        pipeline_options = list(pipeline_options or [])
    placement = runners.place(pipeline_options)
    # The launcher's own reads of SOURCE and writes of OUT use the run's filesystem options.
    storage.use_options(pipeline_options)
    root = source_root(source)
    out = os.fspath(output)
    if storage.is_local(out):
        out = str(Path(out).absolute())
    runners.check_paths(placement, root, out, req.local_paths_on_workers)
    stats = ProcessingStats(start_time=time.time())
    commit.prepare_output(out)
    with output_lock(out) as lock:
        if lock.previous_owner:
            req.announce(f"Taking over from an unfinished run (pid "
                         f"{lock.previous_owner.get('pid')}); removing its leftovers")
        commit.clear_staging(out)
        previous = None if req.full else reindex.load_previous(out)
        settings = settings.for_previous(previous)
        probed = learn_dim(settings.embedder, previous)
        stats.rebuild_reason = reindex.rebuild_reason(previous, settings.fingerprint(), req.full)
        base = previous if stats.rebuild_reason is None else None
        snapshot_id = commit.new_snapshot_id()
        staging = commit.create_staging(out, snapshot_id)
        # The launcher's lists: in staging when OUT is local, else in a local temp folder.
        local = storage.is_local(out)
        scratch = Path(staging if local else tempfile.mkdtemp(prefix="beam-index-"))
        req.cancel.bind(storage.join(staging, CANCEL_FILE))
        run = _Run(root, out, staging, scratch, snapshot_id, settings, pipeline_options,
                   placement, base, stats, req, probed)
        try:
            run.execute()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                req.cancel.cancel(wait=True)  # workers elsewhere stop too; then re-raised
                raise
            if not req.cancel.cancelled or not isinstance(exc, Exception):
                mistake = configuration_error(exc)
                if mistake is not None:
                    raise mistake from None
                raise
            # What finished before the stop, as the progress channel saw it; nothing committed.
            stats.cancelled = True
            stats.files_processed = req.tracker.files_done
            stats.end_time = time.time()
        else:
            # A whole walk found the tree as the index is (a change set says nothing of the
            # rest of the tree: watch records its own, when it finds the tree quiet).
            if (stats.committed or stats.up_to_date) and req.files is None \
                    and req.removed is None:
                record_caught_up(out, stats.snapshot_id)
        finally:
            req.cancel.release()
            if not stats.committed:
                commit.discard_staging(staging)
            if not local:
                shutil.rmtree(scratch, ignore_errors=True)
    return stats


_WHILE_RUNNING = re.compile(r"\s*\[while running '[^']*'\]\s*$")


def configuration_error(exc: BaseException) -> ConfigurationError | None:
    """The embedder's ConfigurationError that failed the pipeline, as one line: the in-process
    runner re-raises it (naming the step), worker processes and portable runners report its
    traceback as text."""
    if isinstance(exc, ConfigurationError):
        return ConfigurationError(_WHILE_RUNNING.sub("", str(exc).strip().splitlines()[0]))
    marker = f"{ConfigurationError.__name__}: "
    for line in reversed(str(exc).splitlines()):
        if marker in line:
            return ConfigurationError(_WHILE_RUNNING.sub("", line.split(marker, 1)[1]).strip())
    return None


def learn_dim(embedder: Embedder, previous: reindex.Previous | None) -> bool:
    """Give an embedder of unknown dimension (`openai` without --embedding-dim) its dimension:
    the live snapshot's when it was made with the same endpoint and model, else the answer
    to one probe request. Returns whether the service was asked."""
    if embedder.dim is not None:
        return False
    if previous is not None:
        spec = previous.manifest.get("fingerprint", {}).get("embedder", {})
        if ({k: spec.get(k) for k in ("name", "model")} == {"name": embedder.name,
                                                             "model": embedder.model}
                and previous.manifest.get("embedder_config") == embedder.config()
                and isinstance(spec.get("dim"), int)):
            embedder.dim = spec["dim"]
            return False
    embedder.dim = embedder.probe()
    return True


def source_root(source: str | os.PathLike) -> str:
    """SOURCE as the pipeline names it: an absolute local folder, or a URL (no trailing /)."""
    if is_url(source):
        url = os.fspath(source).rstrip("/")
        try:
            storage.check_scheme(url)
        except ValueError as exc:
            raise SourceError(f"cannot read source {url}: {exc} (install the Beam extra for "
                              "it, e.g. apache-beam[gcp] or apache-beam[aws])") from None
        return url
    root = Path(source).resolve()
    if not root.is_dir():
        raise NotASourceFolder(f"source is not a directory: {source}")
    return str(root)


def spill_folder(placement: runners.Placement, staging: str, scratch: str | os.PathLike,
                 wanted: bool = True) -> str | None:
    """Where vectors wait for the per-file grouping, or None (they travel in the shuffle).

    Spill files only where every worker shares this host's disk: the local modes, decided from
    the runner, never from OUT. With an object-store OUT they go to the launcher's local
    scratch folder: measured faster than the shuffle (README, "Running at scale").
    """
    if not placement.local or not wanted:
        return None
    folder = staging if storage.is_local(staging) else os.fspath(scratch)
    return storage.join(folder, SPILL_DIR)


@dataclass
class _Run:
    """One run, from discovery to the commit, inside the output lock."""

    root: str
    out: str
    staging: str
    scratch: Path
    snapshot_id: str
    settings: IndexSettings
    options: PipelineOptions | list[str]
    placement: runners.Placement
    base: reindex.Previous | None
    stats: ProcessingStats
    req: RunRequest
    probed: bool  # the embedder's service has answered once already (learn_dim)
    git: gitindex.GitState | None = field(default=None, init=False)  # SOURCE's git, if any
    carried: list[dict] = field(default_factory=list, init=False)  # shards carried forward
    shards: list[dict] = field(default_factory=list, init=False)  # shards the pipeline wrote
    # The new snapshot's lexical index, built while the pipeline runs (lexical/snapshot.py).
    lexicon: SnapshotLexicon | None = field(default=None, init=False)
    committed_files: dict[str, str] = field(default_factory=dict, init=False)  # path → hash
    pipeline_s: float = field(default=0.0, init=False)  # how long the pipeline ran

    def execute(self) -> None:
        try:
            self._execute()
        except BaseLexiconError as exc:
            raise reindex.CorruptSnapshotError(f"snapshot {self.base.snapshot_id}: {exc}; run "
                                               "with --full to rebuild") from None
        finally:
            if self.lexicon is not None:
                self.lexicon.close()

    def _execute(self) -> None:
        tracker, stats, req = self.req.tracker, self.stats, self.req
        tracker.set_stage("discovering")
        with self._progress_channel() as channel, \
                _display(tracker, req.progress_stream, req.quiet):
            plan = self._plan()
            if plan is None:
                return
            embedder = self.settings.embedder
            if embedder.probe_first and not self.probed:
                # A bad key, model or dimension stops the run here, before any pipeline.
                tracker.set_stage("asking the embedder")
                embedder.probe()
            stats.add_counters({f"embedder_{name}": n  # the launcher's probe is a call too
                                for name, n in embedder.take_counts().items()})
            req.cancel.raise_if_cancelled()
            self._arm_fraction_fault()
            tracker.set_stage("running")
            result = self._pipeline(plan, channel)
            channel.close()  # what the workers sent last
            stats.progress_route, stats.progress_events = channel.route, tracker.events
            stats.progress_dropped = channel.dropped + tracker.dropped
            if stats.progress_dropped:
                log.warning("progress: %d messages or events dropped (unsigned, unreadable, or "
                            "not of this run); the counts come from Beam, not from them",
                            stats.progress_dropped)
            if self.spill_dir is not None:
                storage.delete_tree(self.spill_dir)  # the shards hold the vectors now
            if not self.placement.local:
                storage.delete_tree(storage.join(self.staging, EVENTS_DIR))
            self._take_stats(result)
            tracker.set_stage("committing")
            self._commit(plan)
            tracker.set_stage("done")

    def _arm_fraction_fault(self) -> None:
        """BEAM_INDEX_FAULT=embedded:<share>: die once that share of the chunks to embed has
        been embedded (the resume tests' kill; counted like a dry run, tests only)."""
        share = fraction_point("embedded")
        if share is not None:
            total = _count_chunks(self._chunker(), self.scratch / TODO_LIST)
            faults.arm_embedded(math.ceil(share * total))

    def _journal(self) -> journal.JournalSpec | None:
        """The resume journal of this run, or None when it keeps none."""
        mode = self.req.journal
        if mode == "never" or (mode == "auto" and not self.settings.embedder.journal_pays):
            return None
        folder = journal.open_journal(self.out, self.settings.fingerprint())
        return journal.JournalSpec(folder, self.req.journal_max_mb << 20, self.req.journal_fsync)

    def _reuse_table(self, plan: reindex.Plan, spec: journal.JournalSpec | None) -> str | None:
        """Vectors the pipeline need not embed again: the previous rows of changed files, and
        what an unfinished run with this fingerprint journaled. None when there are none."""
        from ..embedding.reuse import write_reuse_table

        base, blocks = self.base, []
        if spec is not None:
            dropped = journal.trim(spec.folder, spec.max_bytes)
            if dropped:
                log.warning("resume journal over %d MB: its %d oldest segments dropped",
                            spec.max_bytes >> 20, len(dropped))
            blocks = journal.read_blocks(spec.folder, self.settings.embedder.dim)
        counted = _counting(blocks)
        target = storage.join(self.staging, REUSE_TABLE)
        rows = write_reuse_table(
            target, self.settings.embedder.dim,
            [storage.join(base.directory, name) for name in shard_names(base.manifest)]
            if base is not None else (),
            plan.replaceable if base is not None else frozenset(), counted)
        self.stats.journal_vectors = counted.vectors
        if counted.vectors:
            self.req.announce(f"Resuming: {counted.vectors} vectors journaled by an unfinished "
                              "run are reused")
        return target if rows else None

    def _progress_channel(self):
        """UDP on loopback in the local modes; event files on OUT's filesystem elsewhere."""
        if self.placement.local:
            return ProgressChannel(self.req.tracker)
        return EventFileChannel(self.req.tracker, storage.join(self.staging, EVENTS_DIR))

    @property
    def spill_dir(self) -> str | None:
        return spill_folder(self.placement, self.staging, self.scratch, self.req.spill)

    def _plan(self) -> reindex.Plan | None:
        """Discovery and the plan; None when the run ends here (dry run, up to date)."""
        tracker, stats, req, base = self.req.tracker, self.stats, self.req, self.base
        subset = req.files is not None or req.removed is not None
        if not subset:
            discovery = discover_to_file(
                self.root, self.scratch / FILE_LIST, max_file_size=self.settings.max_file_size,
                follow_symlinks=req.follow_symlinks, secret_files=self._secret_files,
                on_progress=lambda found: setattr(tracker, "total_files", found))
        else:
            discovery = list_explicit_files(self.root, req.files or (), self.scratch / FILE_LIST,
                                            self.settings.max_file_size, req.follow_symlinks,
                                            self._secret_files)
        if req.git:
            self.git = gitindex.read_git_state(self.root)
        plan = reindex.plan_changes(self.scratch / FILE_LIST, self.scratch / TODO_LIST, base,
                                    checksum_root=self.root if req.checksum else None,
                                    subset=subset, git=self.git,
                                    removed=[relative_to_root(self.root, path)
                                             for path in req.removed or ()])
        stats.record_plan(plan)
        stats.add_skips(discovery.skipped)
        tracker.total_files = plan.to_process
        if base is None:
            req.announce(f"Full build, {stats.rebuild_reason}: {plan.added} files to index")
        else:
            req.announce(f"Re-indexing {base.snapshot_id}: {plan.describe()}")
        fault_point("after-discovery")
        if req.dry_run:
            stats.chunks_to_embed = _count_chunks(self._chunker(), self.scratch / TODO_LIST)
            req.announce(f"Dry run: {plan.to_process} files, {stats.chunks_to_embed} chunks "
                         "to embed; nothing written")
            stats.end_time = time.time()
            return None
        if base is not None and not plan.has_changes and not plan.touched:
            missing = self._missing_indexes()
            if missing:
                req.announce(f"Snapshot {base.snapshot_id} has no {missing}: adding it")
                return plan
            stats.up_to_date = True
            stats.snapshot_id = base.snapshot_id
            stats.end_time = time.time()
            req.announce(f"Index is up to date (snapshot {base.snapshot_id})")
            return None
        return plan

    @property
    def _secret_files(self) -> tuple[str, ...]:
        return () if self.settings.include_secrets else SECRET_FILES

    def _chunker(self) -> ChunkerConfig:
        return ChunkerConfig(self.root, self.settings.chunk_size, self.settings.chunk_overlap,
                             self.settings.max_file_size, self.req.follow_symlinks,
                             self.settings.chunker, self.settings.include_secrets)

    def _pipeline(self, plan: reindex.Plan, channel):
        base, staging = self.base, self.staging
        todo = storage.join(staging, TODO_LIST)
        if self.scratch != Path(staging):  # workers read the list where they can reach it
            # Never empty (a blank line is skipped): an object store takes no zero-byte upload.
            storage.write_bytes(todo, (self.scratch / TODO_LIST).read_bytes() or b"\n")
        self._start_lexicon(plan)  # first: a helper that feeds it starts while Beam imports
        from apache_beam.options.pipeline_options import PipelineOptions

        from .options import embed_processes
        from .pipeline import IndexFilesConfig, run_pipeline

        options = self.options
        if not isinstance(options, PipelineOptions):
            options = PipelineOptions(options)
        spec = self._journal()
        reuse = self._reuse_table(plan, spec)
        filesystems = storage.filesystem_options(options)
        if isinstance(channel, ProgressChannel):
            link = RunLink(channel.address, self.req.cancel.check(), filesystems=filesystems,
                           key=channel.key)
        else:
            link = RunLink(None, self.req.cancel.check(), events_dir=channel.directory,
                           filesystems=filesystems)
        lexicon = self.lexicon.link  # before the carrying starts: it may claim shards
        # Unchanged files' rows are copied while the pipeline runs: pyarrow's reading and
        # compression release the GIL, and the Beam work of a small re-index is mostly Python.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="carry") as pool:
            carrying = pool.submit(reindex.carry_rows, base, plan.carry, staging,
                                   self.lexicon.claim) if base else None
            started = time.monotonic()
            settings = self.settings
            config = IndexFilesConfig(
                self._chunker(), settings.embedder, settings.batch_size, staging, link,
                reuse_table=reuse, embed_concurrency=settings.embed_concurrency,
                embed_processes=embed_processes(options, settings.embed_processes,
                                                settings.embedder.gil_bound, plan.to_process),
                spill_dir=self.spill_dir, journal=spec, lexicon=lexicon)
            result = run_pipeline(config, todo, options, self.req.cancel)
            self.pipeline_s = time.monotonic() - started
            self.carried = carrying.result() if carrying else []
        return result

    def _missing_indexes(self) -> str | None:
        """What the base snapshot lacks that a commit of it now would have (an older
        version's snapshot, or one that grew past --ann-min-rows), or None."""
        missing = [] if self.base_lexicon else ["lexical index"]
        manifest = self.base.manifest
        if manifest.get("counts", {}).get("rows", 0) >= self.req.ann_min_rows \
                and not ann.usable(manifest.get("ann")):
            missing.append("approximate vector index")
        return " and ".join(missing) or None

    def _build_ann(self, shards: list[dict]) -> dict | None:
        """The new snapshot's approximate index, saved into staging, from the base's."""
        if sum(shard["rows"] for shard in shards) < self.req.ann_min_rows:
            return None
        self.req.tracker.set_stage("approximate index")
        base = self.base
        return ann.build(self.staging, shards, self.settings.embedder.dim,
                         (base.directory, base.manifest.get("ann")) if base else None,
                         self.req.ann_min_rows)

    @property
    def base_lexicon(self) -> bool:
        """Whether the base snapshot's lexical index can be carried forward."""
        return self.base is not None and lexical.usable(self.base.manifest.get("lexical"))

    def _start_lexicon(self, plan: reindex.Plan) -> None:
        base = None
        deleted: set[str] = set()
        if self.base_lexicon:
            base = (self.base.directory, self.base.manifest["lexical"])
            # Deleted before any new row is added: a delete drops only the documents before
            # it. Stale files (re-embedding failed) get their previous rows back at the commit.
            deleted = set(self.base.files) - plan.carry
        # The workers share this host (a local mode): they can feed it as they cut files; a
        # small run follows the shards instead, cheaper than starting the feed's process.
        feed = (self.placement.local and storage.is_local(self.staging)
                and plan.to_process >= SMALL_RUN_FILES)
        self.lexicon = SnapshotLexicon(self.staging, base, deleted, feed)

    def _take_stats(self, result) -> None:
        """Beam's counters, checked against the pipeline's outputs; or, from a runner with no
        metrics, the outputs alone. A disagreement stops the run before the commit."""
        summary = commit.staged_summary(self.staging, also_keep={s["path"] for s in self.carried})
        records = storage.read_parquet(storage.join(self.staging, FILES_TABLE),
                                       columns=["path", "file_hash", "size", "total_chunks",
                                                "status", "error"])
        outputs = stats_mod.output_counters(records, summary["shards"])
        problems = stats_mod.contradictions(outputs)
        counters = stats_mod.sum_counters(result)
        if counters is None:
            self.stats.stats_source = "outputs"
            counters = outputs
        else:
            self.stats.stats_source = "metrics"
            problems += stats_mod.disagreements(counters, outputs)
        if problems:
            raise StatsMismatch("the run's counts do not add up, nothing committed: "
                                + "; ".join(problems))
        self.stats.add_counters(counters)
        self.shards = summary["shards"]
        if self.lexicon.fed:  # what its index must hold (read before the files merge)
            columns = (records[name].to_pylist()
                       for name in ("path", "file_hash", "status", "total_chunks"))
            self.committed_files = {path: digest for path, digest, state, chunks
                                    in zip(*columns) if state == INDEXED and chunks > 0}

    def _commit(self, plan: reindex.Plan) -> None:
        stats, req, base, staging = self.stats, self.req, self.base, self.staging
        shards = list(self.shards)
        stale = reindex.merge_files_table(staging, base, plan, self.git)
        if base is not None:
            shards += self.carried + reindex.carry_rows(base, set(stale), staging)
        req.tracker.set_stage("lexical index")
        lexicon = self.lexicon.finish(shards, self.shards, self.carried, self.committed_files,
                                      self.pipeline_s)
        graph = self._build_ann(shards)
        stats.stale = [{"path": p, "reason": r} for p, r in sorted(stale.items())]
        stats.failures = [f for f in commit.staged_failures(staging) if f["path"] not in stale]
        stats.end_time = time.time()
        req.cancel.raise_if_cancelled()  # the last moment a cancel can still stop the commit
        if base is None and stats.files_processed == 0 and stats.failed_files > 0:
            raise NothingCommitted(
                f"every file failed ({stats.failed_files}); nothing committed", stats)
        for name in (FILE_LIST, TODO_LIST, REUSE_TABLE):
            storage.delete(storage.join(staging, name))
        stats.snapshot_id = self.snapshot_id
        fault_point("before-manifest")
        run_stats = {k: v for k, v in stats.to_dict().items() if k not in ("failures", "stale")}
        source = {"root": self.root, "git_commit": self.git.commit if self.git else
                  gitindex.git_commit(self.root)}
        manifest = commit.build_manifest(
            self.snapshot_id, self.settings.fingerprint(), shards, commit.staged_counts(staging),
            stats.failures, stats.stale, run_stats, source,
            previous=base.snapshot_id if base else None,
            embedder_config=self.settings.embedder.config(), lexical=lexicon, ann=graph,
            files_table=commit.stored(storage.join(staging, FILES_TABLE)))
        commit.commit_snapshot(self.out, staging, manifest)
        stats.committed = True
        journal.clear(self.out)  # the snapshot holds what an unfinished run journaled
        fault_point("after-current")
        stats.pruned = reindex.prune_snapshots(self.out, req.keep, self.snapshot_id,
                                               req.prune_grace_s)


def _is_pipeline_options(options) -> bool:
    """Whether `options` is already a PipelineOptions (then Beam is imported anyway)."""
    return options is not None and not isinstance(options, (list, tuple))


def _count_chunks(config: ChunkerConfig, todo: Path) -> int:
    """What a run would embed: the dry run chunks (no embedding) the files it would process."""
    total = 0
    with open(todo, encoding="ascii") as fh:
        for line in fh:
            try:
                total += len(load_chunks(config, FileEntry.from_json(line).path)[2])
            except (OSError, FileSkipped):
                continue
    return total


class _counting:
    """Passes journal blocks through, counting their vectors."""

    def __init__(self, blocks):
        self._blocks = blocks
        self.vectors = 0

    def __iter__(self):
        for keys, rows in self._blocks:
            self.vectors += len(keys) // journal.KEY_BYTES
            yield keys, rows


def _display(tracker: ProgressTracker, stream: TextIO | None, quiet: bool):
    return contextlib.nullcontext() if quiet else ProgressDisplay(tracker, stream)


__all__ = ["IndexSettings", "NothingCommitted", "RunRequest", "StatsMismatch", "run_index"]
