"""Discovery (launcher side): walk a source tree and list the files to index.

Honours nested `.gitignore` files (git's precedence: a deeper file overrides a shallower one,
an ignored directory is never entered), default excludes and a size limit. Only `stat` is done
here; reading, binary sniffing and decoding happen in the pipeline, on the workers. The list is
streamed to a JSON-lines file so the launcher never holds the repository, and the pipeline reads
that file instead of receiving the list through `beam.Create` (see BEAM_NOTES.md).

Example::

    result = discover_to_file(Path("repo"), Path("/tmp/files.jsonl"))
    print(result.files, result.skipped)
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

DEFAULT_MAX_FILE_SIZE = 1 << 20

# Gitignore syntax; matched against paths relative to the source root.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git/",
    ".hg/",
    ".svn/",
    "node_modules/",
    "__pycache__/",
    ".venv/",
    ".tox/",
    ".nox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".idea/",
    ".vscode/",
    "*.egg-info/",
    ".eggs/",
    "build/",
    "dist/",
    "target/",
    "*.pyc",
    ".DS_Store",
)


@dataclass(frozen=True)
class FileEntry:
    """A file to index: its path relative to the source root (posix) and its stat."""

    path: str
    size: int
    mtime_ns: int

    def to_json(self) -> str:
        return json.dumps([self.path, self.size, self.mtime_ns], ensure_ascii=True)

    @classmethod
    def from_json(cls, line: str) -> FileEntry:
        path, size, mtime_ns = json.loads(line)
        return cls(path, size, mtime_ns)


@dataclass
class DiscoveryResult:
    files: int = 0
    total_bytes: int = 0
    skipped: Counter = field(default_factory=Counter)


def _gitignore_spec(directory: Path) -> pathspec.GitIgnoreSpec | None:
    try:
        with open(directory / ".gitignore", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    return spec if len(spec) else None


def _ignored(specs: Sequence[tuple[str, pathspec.GitIgnoreSpec]], rel: str, is_dir: bool) -> bool:
    """Decide with the deepest .gitignore that has an opinion about `rel`."""
    for base, spec in reversed(specs):
        local = rel[len(base):] if base else rel
        result = spec.check_file(local + "/" if is_dir else local)
        if result.include is not None:
            return result.include
    return False


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as lone surrogates
        return False
    return True


def iter_source_files(
    root: Path,
    *,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    excludes: Sequence[str] = DEFAULT_EXCLUDES,
    use_gitignore: bool = True,
    skipped: Counter | None = None,
    follow_symlinks: bool = False,
) -> Iterator[FileEntry]:
    """Yield the files under `root` to index, in a stable (sorted) order.

    Skips are counted in `skipped` by reason: `excluded`, `gitignored`, `too_large`,
    `symlink`, `not_regular`, `unreadable_dir`, `undecodable_name` (a file name that is not
    UTF-8), `vanished`. With `follow_symlinks` links are followed wherever they point, a
    folder is walked once (`symlink_loop`: reached again through a link) and a link that
    leads nowhere counts as `broken_symlink`.
    """
    skipped = skipped if skipped is not None else Counter()
    walked: set[tuple[int, int]] = set()
    if follow_symlinks:
        top = os.stat(root)
        walked.add((top.st_dev, top.st_ino))
    exclude_spec = pathspec.GitIgnoreSpec.from_lines(excludes)
    # Stack of (directory relative path with trailing "/", gitignore specs in force).
    root_specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    stack: list[tuple[str, list[tuple[str, pathspec.GitIgnoreSpec]]]] = [("", root_specs)]
    while stack:
        rel_dir, specs = stack.pop()
        directory = root / rel_dir if rel_dir else root
        if use_gitignore:
            spec = _gitignore_spec(directory)
            if spec is not None:
                specs = [*specs, (rel_dir, spec)]
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            skipped["unreadable_dir"] += 1
            continue
        if rel_dir and any(e.name == "pyvenv.cfg" for e in entries):
            # A virtualenv, whatever its name (`venv/` is also a stdlib package name).
            skipped["excluded"] += 1
            continue
        subdirs = []
        for entry in entries:
            rel = rel_dir + entry.name
            if not _utf8(entry.name):
                # Parquet strings are UTF-8: such a name cannot be stored, so it is counted.
                skipped["undecodable_name"] += 1
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                skipped["vanished"] += 1
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if exclude_spec.check_file(rel + "/" if is_dir else rel).include:
                skipped["excluded"] += 1
                continue
            if specs and _ignored(specs, rel, is_dir):
                skipped["gitignored"] += 1
                continue
            if stat.S_ISLNK(st.st_mode):
                if not follow_symlinks:
                    skipped["symlink"] += 1
                    continue
                try:
                    st = os.stat(entry.path)
                except OSError:  # dangling, or a chain of links that loops (ELOOP)
                    skipped["broken_symlink"] += 1
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
            if is_dir:
                if follow_symlinks:
                    if (st.st_dev, st.st_ino) in walked:
                        skipped["symlink_loop"] += 1
                        continue
                    walked.add((st.st_dev, st.st_ino))
                subdirs.append((rel + "/", specs))
            elif not stat.S_ISREG(st.st_mode):
                skipped["not_regular"] += 1
            elif st.st_size > max_file_size:
                skipped["too_large"] += 1
            else:
                yield FileEntry(rel, st.st_size, st.st_mtime_ns)
        # Reversed so that popping visits subdirectories in sorted order.
        stack.extend(reversed(subdirs))


def discover_to_file(
    root: Path,
    list_path: Path,
    on_progress: Callable[[int], None] | None = None,
    **options,
) -> DiscoveryResult:
    """Stream the files under `root` into `list_path` (one JSON entry per line).

    `on_progress(files_found)` is called every 1,000 files so a long walk is never silent.
    """
    if not root.is_dir():
        raise NotADirectoryError(f"source is not a directory: {root}")
    result = DiscoveryResult()
    with open(list_path, "w", encoding="ascii") as out:
        for entry in iter_source_files(root, skipped=result.skipped, **options):
            out.write(entry.to_json() + "\n")
            result.files += 1
            result.total_bytes += entry.size
            if on_progress is not None and result.files % 1000 == 0:
                on_progress(result.files)
    return result


def relative_to_root(root: Path, given: str | os.PathLike) -> str:
    """`given` (relative to `root`, or absolute) as a posix path relative to `root`.

    A path outside `root` comes back as given (absolute, or with `..`), for the pipeline to
    refuse with its reason.
    """
    full = Path(os.path.normpath(root / given))  # an absolute `given` replaces root
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        return os.fspath(given)


def list_explicit_files(root: Path, files: Sequence[str | os.PathLike], list_path: Path,
                        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
                        follow_symlinks: bool = False) -> DiscoveryResult:
    """Write an explicit file list (relative to `root`, or absolute) in discovery's format.

    Explicit files bypass .gitignore and the default excludes but keep the regular-file and
    size checks. A path outside `root`, or one that does not exist, is listed as given so the
    pipeline fails it with its reason.
    """
    result = DiscoveryResult()
    seen: set[str] = set()
    with open(list_path, "w", encoding="ascii") as out:
        for given in files:
            rel = relative_to_root(root, given)
            full = root / rel
            if rel in seen:
                continue
            seen.add(rel)
            if not _utf8(rel):
                result.skipped["undecodable_name"] += 1
                continue
            try:
                st = os.stat(full) if follow_symlinks else os.lstat(full)
            except OSError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                result.skipped["symlink"] += 1
            elif st is not None and not stat.S_ISREG(st.st_mode):
                result.skipped["not_regular"] += 1
            elif st is not None and st.st_size > max_file_size:
                result.skipped["too_large"] += 1
            else:
                entry = FileEntry(rel, st.st_size, st.st_mtime_ns) if st else FileEntry(rel, 0, 0)
                out.write(entry.to_json() + "\n")
                result.files += 1
                result.total_bytes += entry.size
    return result
