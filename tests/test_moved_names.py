"""Names that moved when the package took one subpackage per stage (issue 39) still import
from where they were, for one release, with a DeprecationWarning that names the new place."""

import importlib
import subprocess
import sys
import warnings

import pytest


@pytest.mark.parametrize("old, new", [("beam_pipeline.syntax", "beam_pipeline.chunking.syntax"),
                                      ("beam_pipeline.chunk", "beam_pipeline.chunking.transform"),
                                      ("beam_pipeline.lexfeed", "beam_pipeline.lexical.feed"),
                                      ("beam_pipeline.index", "beam_pipeline.search.reader"),
                                      ("beam_pipeline.ann", "beam_pipeline.search.ann"),
                                      ("beam_pipeline.discover", "beam_pipeline.source.discover"),
                                      ("beam_pipeline.gitindex", "beam_pipeline.source.gitindex"),
                                      ("beam_pipeline.sourcefile", "beam_pipeline.source.text"),
                                      ("beam_pipeline.secretscan",
                                       "beam_pipeline.source.secretscan"),
                                      ("beam_pipeline.language", "beam_pipeline.source.language"),
                                      ("beam_pipeline.storage", "beam_pipeline.source.storage"),
                                      ("beam_pipeline.embed",
                                       "beam_pipeline.embedding.transform"),
                                      ("beam_pipeline.schema", "beam_pipeline.layout.schema"),
                                      ("beam_pipeline.journal", "beam_pipeline.embedding.journal"),
                                      ("beam_pipeline.verify", "beam_pipeline.store.verify"),
                                      ("beam_pipeline.commit", "beam_pipeline.store.commit"),
                                      ("beam_pipeline.indexing", "beam_pipeline.run.indexing"),
                                      ("beam_pipeline.stats", "beam_pipeline.run.stats"),
                                      ("beam_pipeline.cancel", "beam_pipeline.runtime.cancel"),
                                      ("beam_pipeline.faults", "beam_pipeline.runtime.faults")])
def test_a_moved_module_is_the_new_one_and_says_so(old, new):
    # A fresh interpreter: this one may have imported the old name already (no second warning).
    code = (f"import warnings; warnings.simplefilter('error')\n"
            f"try:\n    import {old}\nexcept DeprecationWarning as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0 and new in done.stdout, done.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert importlib.import_module(old) is importlib.import_module(new)


@pytest.mark.parametrize("module, name, new", [
    ("beam_pipeline.sourcefile", "load_chunks", "beam_pipeline.chunking.cut"),
    ("beam_pipeline.sourcefile", "cut", "beam_pipeline.chunking.cut"),
    ("beam_pipeline.pipeline", "run_index", "beam_pipeline.run.indexing"),
    ("beam_pipeline.run.pipeline", "StatsMismatch", "beam_pipeline.run.indexing"),
    ("beam_pipeline.progress", "RunLink", "beam_pipeline.runtime.link"),
    ("beam_pipeline.stats", "counter", "beam_pipeline.runtime.counters"),
])
def test_a_moved_name_still_imports_with_a_warning(module, name, new):
    with pytest.warns(DeprecationWarning, match=name):
        found = getattr(importlib.import_module(module), name)
    assert found is getattr(importlib.import_module(new), name)


def test_the_old_chunking_module_api_is_the_package_api():
    from beam_pipeline.chunking import (  # noqa: F401 - each name must import
        DEFAULT_CHUNK_SIZE,
        Chunk,
        Decoded,
        UndecodableError,
        chunk_text,
        cut_at,
        decode_source,
        default_overlap,
        is_binary,
        spans_of,
    )

    assert decode_source(b"x = 1\n").text == "x = 1\n"
    assert [c.text for c in chunk_text("a\nb\n", size=10, overlap=0)] == ["a\nb\n"]


def test_the_reader_joins_the_public_names():
    import beam_pipeline
    from beam_pipeline import Index
    from beam_pipeline.search import Index as StageIndex

    assert Index is StageIndex and "Index" in beam_pipeline.__all__


def test_every_moved_name_resolves_to_a_module_that_exists():
    from beam_pipeline import _moved

    for old, new in _moved.MOVED.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert importlib.import_module(f"beam_pipeline.{old}") is \
                importlib.import_module(f"beam_pipeline.{new}"), old
