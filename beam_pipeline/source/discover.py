"""Discovery (launcher side): walk a source tree and list the files to index.

The tree is a local folder or a URL on any filesystem Beam has installed (s3://, gs://, …);
the same rules hold for both. Honours nested `.gitignore` files (git's precedence: a deeper
file overrides a shallower one, an ignored directory is never entered), default excludes and a
size limit. Only metadata is used here (stat, or the store's listing: one LIST of the prefix,
and a GET per .gitignore); reading, binary sniffing and decoding happen in the pipeline, on the
workers. The list is
streamed to a JSON-lines file so the launcher never holds the repository, and the pipeline reads
that file instead of receiving the list through `beam.Create` (see BEAM_NOTES.md).

Example::

    result = discover_to_file(Path("repo"), Path("/tmp/files.jsonl"))
    print(result.files, result.skipped)
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NotASourceFolder, SourceError
from .secretscan import SECRET_FILES

if TYPE_CHECKING:  # imported where a walk needs it: `search` and `--help` never walk
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


FOLDER, FILE, LINK, OTHER, GONE = "folder", "file", "link", "other", "gone"


@dataclass(frozen=True)
class _Node:
    """What the walk needs to know of one entry of a folder."""

    name: str
    kind: str  # FOLDER, FILE, LINK, OTHER (FIFO, device, …) or GONE (vanished before its stat)
    size: int = 0
    mtime_ns: int = 0
    ident: tuple[int, int] | None = None  # a local folder's (st_dev, st_ino): walked once


def _local_node(name: str, st: os.stat_result) -> _Node:
    if stat.S_ISDIR(st.st_mode):
        kind = FOLDER
    elif stat.S_ISLNK(st.st_mode):
        kind = LINK
    elif stat.S_ISREG(st.st_mode):
        kind = FILE
    else:
        kind = OTHER
    return _Node(name, kind, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino))


class _LocalTree:
    """A folder on this machine, read with scandir and lstat (symlinks are seen as links)."""

    def __init__(self, root: str):
        self.root = root

    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def root_ident(self) -> tuple[int, int]:
        st = os.stat(self.root)
        return st.st_dev, st.st_ino

    def gitignore(self, rel_dir: str) -> list[str] | None:
        try:
            with open(self._path(rel_dir + ".gitignore"), encoding="utf-8",
                      errors="replace") as fh:
                return fh.read().splitlines()
        except OSError:
            return None

    def scan(self, rel_dir: str) -> list[os.DirEntry]:
        with os.scandir(self._path(rel_dir)) as it:
            return sorted(it, key=lambda e: e.name)

    @staticmethod
    def node(entry: os.DirEntry) -> _Node:
        try:
            return _local_node(entry.name, entry.stat(follow_symlinks=False))
        except OSError:
            return _Node(entry.name, GONE)

    def follow(self, rel: str) -> _Node | None:
        """What a symlink leads to; None when it is dangling or its chain loops (ELOOP)."""
        try:
            return _local_node(os.path.basename(rel), os.stat(self._path(rel)))
        except OSError:
            return None


class _StoreTree:
    """A prefix on an object store (or any Beam filesystem), from one listing of its objects.

    Object stores have no folders: a folder is the common prefix of its objects' names. Sizes
    and modification times come from the listing's metadata; no object is read but .gitignore.
    """

    def __init__(self, root: str):
        from . import storage

        self.root = root.rstrip("/")
        try:
            found = storage.listing(self.root)
        except Exception as exc:  # noqa: BLE001 - Beam wraps every listing failure differently
            raise SourceError(f"cannot list source {self.root}: {_first_line(exc)}") from None
        if not found:
            raise SourceError(f"source {self.root} holds no files (is the URL right?)")
        self._folders: dict[str, dict[str, _Node]] = {"": {}}
        skip = len(self.root) + 1
        for url, size, updated in found:
            rel = url[skip:]
            if not rel or rel.endswith("/"):  # a console's zero-byte "folder" marker
                continue
            *parents, name = rel.split("/")
            folder = ""
            for part in parents:
                self._folders[folder][part] = _Node(part, FOLDER)
                folder += part + "/"
                self._folders.setdefault(folder, {})
            # A name that is both an object and a prefix is walked as the folder.
            self._folders[folder].setdefault(name, _Node(name, FILE, size, _ns(updated)))

    def root_ident(self) -> None:
        return None

    def gitignore(self, rel_dir: str) -> list[str] | None:
        node = self._folders.get(rel_dir, {}).get(".gitignore")
        if node is None or node.kind != FILE:
            return None
        try:
            data = read_store_object(join_url(self.root, rel_dir + ".gitignore"), 1 << 20)
        except OSError:
            return None
        return data.decode("utf-8", "replace").splitlines()

    def scan(self, rel_dir: str) -> list[_Node]:
        return sorted(self._folders.get(rel_dir, {}).values(), key=lambda n: n.name)

    @staticmethod
    def node(node: _Node) -> _Node:
        return node

    def follow(self, rel: str) -> None:
        return None  # object stores have no links


def is_url(source: str | os.PathLike) -> bool:
    """SOURCE names a Beam filesystem other than the local one (s3://, gs://, …)."""
    text = os.fspath(source)
    return "://" in text and not text.startswith("file://")


def join_url(root: str, rel: str) -> str:
    return root.rstrip("/") + "/" + rel


def read_store_object(url: str, limit: int) -> bytes:
    """Up to `limit` bytes of an object, through Beam's FileSystems (OSError on failure)."""
    from . import storage

    try:
        with storage.open_read(url) as fh:
            return fh.read(limit)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - a store client's own errors, as one kind
        raise SourceError(f"{type(exc).__name__}: {_first_line(exc)}") from None


def _ns(seconds: float | None) -> int:
    """A store's modification time (seconds, float) as the nanoseconds files.parquet holds."""
    return round((seconds or 0) * 1e9)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _tree(root: str | os.PathLike) -> _LocalTree | _StoreTree:
    return _StoreTree(os.fspath(root)) if is_url(root) else _LocalTree(os.fspath(root))


def _gitignore_spec(lines: list[str] | None) -> pathspec.GitIgnoreSpec | None:
    if lines is None:
        return None
    import pathspec

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
    root: str | os.PathLike,
    *,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    excludes: Sequence[str] = DEFAULT_EXCLUDES,
    secret_files: Sequence[str] = SECRET_FILES,
    use_gitignore: bool = True,
    skipped: Counter | None = None,
    follow_symlinks: bool = False,
) -> Iterator[FileEntry]:
    """Yield the files under `root` (a local folder, or a URL Beam has a filesystem for) to
    index, in a stable (sorted) order; the same rules hold for both.

    Skips are counted in `skipped` by reason: `excluded`, `secret` (a name of
    `secret_files`: secretscan.py), `gitignored`, `too_large`,
    `symlink`, `not_regular`, `unreadable_dir`, `undecodable_name` (a file name that is not
    UTF-8), `vanished`. With `follow_symlinks` links are followed wherever they point, a
    folder is walked once (`symlink_loop`: reached again through a link) and a link that
    leads nowhere counts as `broken_symlink`.
    """
    skipped = skipped if skipped is not None else Counter()
    tree = _tree(root)
    walked: set[tuple[int, int]] = set()
    if follow_symlinks and tree.root_ident() is not None:
        walked.add(tree.root_ident())
    import pathspec

    exclude_spec = pathspec.GitIgnoreSpec.from_lines(excludes)
    secret_spec = pathspec.GitIgnoreSpec.from_lines(secret_files)
    # Stack of (folder relative path with trailing "/", gitignore specs in force).
    stack: list[tuple[str, list[tuple[str, pathspec.GitIgnoreSpec]]]] = [("", [])]
    while stack:
        rel_dir, specs = stack.pop()
        if use_gitignore:
            spec = _gitignore_spec(tree.gitignore(rel_dir))
            if spec is not None:
                specs = [*specs, (rel_dir, spec)]
        try:
            entries = tree.scan(rel_dir)
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
            node = tree.node(entry)
            if node.kind == GONE:
                skipped["vanished"] += 1
                continue
            is_dir = node.kind == FOLDER
            if exclude_spec.check_file(rel + "/" if is_dir else rel).include:
                skipped["excluded"] += 1
                continue
            if not is_dir and secret_files and secret_spec.check_file(rel).include:
                skipped["secret"] += 1
                continue
            if specs and _ignored(specs, rel, is_dir):
                skipped["gitignored"] += 1
                continue
            if node.kind == LINK:
                if not follow_symlinks:
                    skipped["symlink"] += 1
                    continue
                node = tree.follow(rel)
                if node is None:
                    skipped["broken_symlink"] += 1
                    continue
                is_dir = node.kind == FOLDER
            if is_dir:
                if follow_symlinks and node.ident is not None:
                    if node.ident in walked:
                        skipped["symlink_loop"] += 1
                        continue
                    walked.add(node.ident)
                subdirs.append((rel + "/", specs))
            elif node.kind != FILE:
                skipped["not_regular"] += 1
            elif node.size > max_file_size:
                skipped["too_large"] += 1
            else:
                yield FileEntry(rel, node.size, node.mtime_ns)
        # Reversed so that popping visits subdirectories in sorted order.
        stack.extend(reversed(subdirs))


class PathRules:
    """The walk's rules (iter_source_files) for one path at a time, for a watcher that hears
    paths, not folders: why a path relative to a local `root` would not be indexed, or None.

    Reasons are the walk's: `excluded` (the default excludes, or inside a virtualenv),
    `secret`, `gitignored` (by the .gitignore of any folder on its way, the deepest deciding).
    Each folder's .gitignore is read once; `forget()` drops them when one changes.
    """

    def __init__(self, root: str | os.PathLike, *, excludes: Sequence[str] = DEFAULT_EXCLUDES,
                 secret_files: Sequence[str] = SECRET_FILES, use_gitignore: bool = True):
        import pathspec

        self.root = os.fspath(root)
        self.tree = _LocalTree(self.root)
        self.use_gitignore = use_gitignore
        self._exclude = pathspec.GitIgnoreSpec.from_lines(excludes)
        self._secret = pathspec.GitIgnoreSpec.from_lines(secret_files) if secret_files else None
        self._gitignores: dict[str, pathspec.GitIgnoreSpec | None] = {}

    def forget(self) -> None:
        self._gitignores.clear()

    def skip_reason(self, rel: str) -> str | None:
        parts = rel.split("/")
        specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
        for depth in range(len(parts)):
            rel_dir = "/".join(parts[:depth]) + "/" if depth else ""
            if depth and os.path.isfile(os.path.join(self.root, rel_dir, "pyvenv.cfg")):
                return "excluded"  # a virtualenv, whatever its name
            if self.use_gitignore:
                if rel_dir not in self._gitignores:
                    self._gitignores[rel_dir] = _gitignore_spec(self.tree.gitignore(rel_dir))
                if self._gitignores[rel_dir] is not None:
                    specs.append((rel_dir, self._gitignores[rel_dir]))
            name = "/".join(parts[:depth + 1])
            is_dir = depth < len(parts) - 1
            if self._exclude.check_file(name + "/" if is_dir else name).include:
                return "excluded"
            if not is_dir and self._secret is not None and self._secret.check_file(name).include:
                return "secret"
            if specs and _ignored(specs, name, is_dir):
                return "gitignored"
        return None


def discover_to_file(
    root: str | os.PathLike,
    list_path: Path,
    on_progress: Callable[[int], None] | None = None,
    **options,
) -> DiscoveryResult:
    """Stream the files under `root` into `list_path` (one JSON entry per line).

    `on_progress(files_found)` is called every 1,000 files so a long walk is never silent.
    """
    if not is_url(root) and not os.path.isdir(root):
        raise NotASourceFolder(f"source is not a directory: {root}")
    result = DiscoveryResult()
    with open(list_path, "w", encoding="ascii") as out:
        for entry in iter_source_files(root, skipped=result.skipped, **options):
            out.write(entry.to_json() + "\n")
            result.files += 1
            result.total_bytes += entry.size
            if on_progress is not None and result.files % 1000 == 0:
                on_progress(result.files)
    return result


def relative_to_root(root: str | os.PathLike, given: str | os.PathLike) -> str:
    """`given` (relative to `root`, or absolute: a path, or a URL under a URL root) as a posix
    path relative to `root`.

    A path outside `root` comes back as given (absolute, or with `..`), for the pipeline to
    refuse with its reason.
    """
    given = os.fspath(given)
    if is_url(root):
        base = os.fspath(root).rstrip("/") + "/"
        if given.startswith(base):
            return given[len(base):]
        return given if is_url(given) else posixpath.normpath(given)
    full = Path(os.path.normpath(Path(root) / given))  # an absolute `given` replaces root
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        return given


def _explicit_node(root: str, rel: str, follow_symlinks: bool) -> _Node | None:
    """What an explicitly listed file is; None when it cannot be found."""
    if is_url(root):
        from . import storage

        try:
            found = storage.stat(join_url(root, rel))
        except OSError:  # not listable: the pipeline says why
            return None
        return None if found is None else _Node(rel, FILE, found[0], _ns(found[1]))
    full = os.path.join(root, rel)
    try:
        if not follow_symlinks and _through_a_link(root, rel):
            # O_NOFOLLOW guards only the last component: a symlinked folder on the way
            # (etc_dir → /etc) would lead outside SOURCE, where the walk never goes.
            return _Node(rel, LINK, 0, 0)
        return _local_node(rel, os.stat(full) if follow_symlinks else os.lstat(full))
    except OSError:
        return None


def _through_a_link(root: str, rel: str) -> bool:
    """Is a folder on the way from `root` to `rel` a symlink?"""
    folder = root
    for part in rel.split("/")[:-1]:
        folder = os.path.join(folder, part)
        if stat.S_ISLNK(os.lstat(folder).st_mode):
            return True
    return False


def list_explicit_files(root: str | os.PathLike, files: Sequence[str | os.PathLike],
                        list_path: Path, max_file_size: int = DEFAULT_MAX_FILE_SIZE,
                        follow_symlinks: bool = False,
                        secret_files: Sequence[str] = SECRET_FILES) -> DiscoveryResult:
    """Write an explicit file list (relative to `root`, or absolute) in discovery's format.

    Explicit files bypass .gitignore and the default excludes but keep the secret, regular-file
    and size checks. A path outside `root`, or one that does not exist, is listed as given so
    the pipeline fails it with its reason.
    """
    import pathspec

    root = os.fspath(root)
    secret_spec = pathspec.GitIgnoreSpec.from_lines(secret_files)
    result = DiscoveryResult()
    seen: set[str] = set()
    with open(list_path, "w", encoding="ascii") as out:
        for given in files:
            rel = relative_to_root(root, given)
            if rel in seen:
                continue
            seen.add(rel)
            if not _utf8(rel):
                result.skipped["undecodable_name"] += 1
                continue
            if secret_files and secret_spec.check_file(rel).include:
                result.skipped["secret"] += 1
                continue
            node = _explicit_node(root, rel, follow_symlinks)
            if node is not None and node.kind == LINK:
                result.skipped["symlink"] += 1
            elif node is not None and node.kind != FILE:
                result.skipped["not_regular"] += 1
            elif node is not None and node.size > max_file_size:
                result.skipped["too_large"] += 1
            else:
                entry = FileEntry(rel, node.size, node.mtime_ns) if node else FileEntry(rel, 0, 0)
                out.write(entry.to_json() + "\n")
                result.files += 1
                result.total_bytes += entry.size
    return result
