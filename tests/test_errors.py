"""One error root: everything the package raises on purpose is a BeamIndexError, keeps the
built-in base callers caught before, and the CLI turns it into its exit code in one place."""

import importlib
import inspect
import pkgutil

import pytest
from conftest import code_file, make_tree

import beam_pipeline
from beam_pipeline import errors
from beam_pipeline.cli import main
from beam_pipeline.errors import BeamIndexError

# The package's own modules, test helpers included; `python -m beam_pipeline` runs on import.
MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(beam_pipeline.__path__,
                                                              "beam_pipeline.")
                 if not name.endswith("__main__"))


def _own_exceptions():
    for name in MODULES:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == name:
                yield cls


def test_every_exception_the_package_defines_derives_from_the_root():
    found = list(_own_exceptions())
    assert len(found) >= 20  # the walk saw the package, not an empty list
    strays = [f"{cls.__module__}.{cls.__qualname__}" for cls in found
              if not issubclass(cls, BeamIndexError)]
    assert strays == []


@pytest.mark.parametrize("name, builtin", [
    ("beam_pipeline.errors.UsageError", ValueError),
    ("beam_pipeline.errors.SearchError", ValueError),
    ("beam_pipeline.errors.SourceError", OSError),
    ("beam_pipeline.errors.NotASourceFolder", NotADirectoryError),
    ("beam_pipeline.run.config.ConfigError", ValueError),
    ("beam_pipeline.run.runners.RunnerRefused", ValueError),
    ("beam_pipeline.source.text.UndecodableError", ValueError),
    ("beam_pipeline.source.text.OutsideRootError", OSError),
    ("beam_pipeline.source.storage.AlteredFile", ValueError),
])
def test_each_keeps_the_builtin_base_callers_caught(name, builtin):
    module, _, attr = name.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), attr), builtin)


@pytest.mark.parametrize("name, branch", [
    ("beam_pipeline.store.lock.LockedError", errors.OutputError),
    ("beam_pipeline.store.reindex.CorruptSnapshotError", errors.OutputError),
    ("beam_pipeline.run.indexing.StatsMismatch", errors.RunError),
    ("beam_pipeline.run.indexing.NothingCommitted", errors.RunError),
    ("beam_pipeline.embedders.ConfigurationError", errors.RunError),
    ("beam_pipeline.lexical.fields.LexicalError", errors.IndexReadError),
    ("beam_pipeline.search.ann.AnnError", errors.IndexReadError),
    ("beam_pipeline.source.text.FileSkipped", errors.FileError),
    ("beam_pipeline.chunking.syntax.NoSyntax", errors.FileError),
])
def test_each_sits_on_its_branch(name, branch):
    module, _, attr = name.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), attr), branch)


def test_a_bad_option_value_is_a_usage_error_from_the_api_too(tmp_path):
    from beam_pipeline import IndexSettings

    with pytest.raises(errors.UsageError, match="chunk size"):
        IndexSettings.create(chunk_size=0)


def test_the_cli_exits_with_the_errors_code(tmp_path, capsys):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 3)})
    out = tmp_path / "out"
    # A usage error: exit 2 and its message, no traceback, nothing written.
    assert main(["index", str(src), "--output", str(out), "--chunk-size", "0", "-q"]) == 2
    err = capsys.readouterr().err
    assert "beam-index: error:" in err and "chunk size" in err and "Traceback" not in err
    assert not out.exists()
    # A read error: exit 1.
    assert main(["search", str(tmp_path / "nothing"), "anything"]) == 1
    assert "beam-index: error:" in capsys.readouterr().err
    # A source that is no folder: exit 1, an OSError's message.
    assert main(["index", str(tmp_path / "missing"), "--output", str(out), "-q"]) == 1
    assert "source is not a directory" in capsys.readouterr().err
