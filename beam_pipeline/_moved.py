"""The old names of what moved into a stage's subpackage (issue 39), kept for one release:
importing one warns (DeprecationWarning, naming the new place) and gives the new module or
object itself, so state and classes are shared. Modules: one finder at the end of
`sys.meta_path` answers for the names in MOVED only, after the normal import found no such
file. Names a module no longer defines: its `__getattr__`, made by `names`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

PACKAGE = __package__
MOVED = {
    "ann": "search.ann",
    "assemble": "store.assemble",
    "bundles": "runtime.bundles",
    "cancel": "runtime.cancel",
    "chunk": "chunking.transform",
    "columns": "layout.columns",
    "commit": "store.commit",
    "config": "run.config",
    "discover": "source.discover",
    "embed": "embedding.transform",
    "event_files": "runtime.event_files",
    "faults": "runtime.faults",
    "flags": "run.flags",
    "gitindex": "source.gitindex",
    "index": "search.reader",
    "indexing": "run.indexing",
    "journal": "embedding.journal",
    "language": "source.language",
    "lexfeed": "lexical.feed",
    "lock": "store.lock",
    "options": "run.options",
    "pipeline": "run.pipeline",
    "progress": "run.progress",
    "records": "layout.records",
    "reindex": "store.reindex",
    "reuse": "embedding.reuse",
    "rows": "store.rows",
    "runners": "run.runners",
    "schema": "layout.schema",
    "secretscan": "source.secretscan",
    "settings": "run.settings",
    "sourcefile": "source.text",
    "spill": "store.spill",
    "stats": "run.stats",
    "storage": "source.storage",
    "syntax": "chunking.syntax",
    "terminal": "run.terminal",
    "verify": "store.verify",
    "write": "store.write",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `beam_pipeline.<old>` for each old name in MOVED."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.rpartition(".")
        if package != PACKAGE or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = f"{PACKAGE}.{MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {new}", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        pass  # the new module ran when it was imported


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())


def names(module: str, moved: dict[str, str]):
    """A `__getattr__` for `module`'s names that moved: `moved` maps each to the module (under
    this package) that defines it now, imported by name when asked for: the new module imports
    the old one, and an import statement here would be a cycle."""

    def __getattr__(name: str):
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new = f"{PACKAGE}.{moved[name]}"
        warnings.warn(f"{module}.{name} moved to {new}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)

    return __getattr__
