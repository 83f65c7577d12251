"""Property: whatever a manifest holds, the readers answer with IndexReadError or a list of
problems — never another exception, never a file outside the snapshot folder."""

import atexit
import json
import shutil
import tempfile
from functools import cache
from pathlib import Path

from conftest import code_file, make_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.layout.schema import MANIFEST_FILE
from beam_pipeline.search import Index, IndexReadError
from beam_pipeline.store.verify import verify_index

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)
hostile_names = st.sampled_from(["../files.parquet", "/etc/passwd", "..", "", "part-x/../../a",
                                 "part-ok.parquet", "part-\x00.parquet", 7, None, ["part-a"]])


@cache
def _built() -> tuple[Path, dict]:
    root = Path(tempfile.mkdtemp(prefix="beam-fuzz-"))
    atexit.register(shutil.rmtree, root, True)  # built once per session, shared by examples
    src = make_tree(root / "src", {f"m{i}.py": code_file(f"m{i}", 15) for i in range(3)})
    run_index(src, root / "out", IndexSettings.create("hashing", embedding_dim=16))
    index = Index.open(root / "out")
    return root / "out", index.manifest


def _with_manifest(manifest) -> Path:
    out, _ = _built()
    copy = Path(tempfile.mkdtemp(prefix="beam-fuzz-case-")) / "out"
    shutil.copytree(out, copy)
    snapshot = next((copy / "snapshots").iterdir())
    (snapshot / MANIFEST_FILE).write_text(json.dumps(manifest))
    return copy


def _readers_are_safe(out: Path) -> None:
    try:
        problems = verify_index(out)
        assert isinstance(problems, list)
        try:
            index = Index.open(out)
        except IndexReadError:
            assert problems
            return
        for name in index.shards:
            assert Path(index.shard_path(name)).parent == Path(index.directory)
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(["format_version", "fingerprint", "shards", "counts", "snapshot_id",
                            "embedder_config", "files_table", "failures"]), value=json_values)
def test_any_value_under_a_manifest_key(key, value):
    _, manifest = _built()
    _readers_are_safe(_with_manifest({**manifest, key: value}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile_names, rows=json_values)
def test_shard_entries_naming_anything(name, rows):
    _, manifest = _built()
    out = _with_manifest({**manifest, "shards": [{"path": name, "rows": rows}]})
    problems = verify_index(out)  # _readers_are_safe removes the copy
    if not (isinstance(name, str) and name.startswith("part-") and "/" not in name
            and name.endswith(".parquet") and "\x00" not in name):
        assert problems and "invalid shard path" in problems[0]
    _readers_are_safe(out)


@settings(max_examples=30, deadline=None)
@given(value=json_values)
def test_a_manifest_that_is_not_a_mapping(value):
    _readers_are_safe(_with_manifest(value))
