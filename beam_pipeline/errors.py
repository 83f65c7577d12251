"""What beam_pipeline raises on purpose: one root, a branch per place a run can go wrong.

    BeamIndexError
    ├── UsageError        an option, a profile or a runner that a run cannot start with (exit 2)
    ├── SourceError       SOURCE cannot be listed or read (NotASourceFolder: not a folder)
    ├── FileError         one file cannot be indexed: recorded in the files table, the run goes on
    ├── OutputError       OUT cannot hold an index, is locked, or its base snapshot is unusable
    ├── RunError          the run as a whole failed: nothing was committed
    ├── IndexReadError    an index cannot be read (missing, unreadable, altered)
    └── SearchError       a search request that cannot be answered as asked

Each keeps the built-in base it had before there was a root (a UsageError is a ValueError, a
SourceError an OSError, …), so `except ValueError` in a caller still catches what it caught.
`beam-index` exits with the error's `exit_code` (cli.py), the only place codes are decided.

Example::

    try:
        run_index("repo", "index", IndexSettings.create(chunk_size=-1))
    except BeamIndexError as exc:
        print(type(exc).__name__, exc)  # UsageError chunk_size must be positive, got -1
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2


class BeamIndexError(Exception):
    """Anything beam_pipeline raises on purpose."""

    exit_code = EXIT_FAILED


class UsageError(BeamIndexError, ValueError):
    """An option, a profile or a runner that a run cannot start with."""

    exit_code = EXIT_USAGE


class SourceError(BeamIndexError, OSError):
    """SOURCE cannot be listed or read."""


class NotASourceFolder(SourceError, NotADirectoryError):
    """SOURCE is a local path that is not a folder."""


class FileError(BeamIndexError):
    """One file cannot be indexed; its reason is recorded and the run goes on."""


class OutputError(BeamIndexError):
    """OUT cannot hold an index (not a folder, not writable, a symlink elsewhere, …)."""


class RunError(BeamIndexError):
    """The run as a whole failed; nothing was committed."""


class IndexReadError(BeamIndexError):
    """An index, or a file of one, cannot be read."""


class SearchError(BeamIndexError, ValueError):
    """A search request that cannot be answered as asked (bad pattern, mode, …)."""
