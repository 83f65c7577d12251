import os
from collections import Counter

from beam_pipeline.source.discover import FileEntry, discover_to_file, iter_source_files


def make_tree(root, files):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def paths(root, **kw):
    skipped = Counter()
    found = [e.path for e in iter_source_files(root, skipped=skipped, **kw)]
    return found, skipped


def test_nested_gitignore_with_negation_and_precedence(tmp_path):
    make_tree(tmp_path, {
        ".gitignore": "*.log\nsecret/\n",
        "a.py": "a", "debug.log": "x", "secret/key.py": "k",
        "pkg/.gitignore": "!keep.log\ngenerated_*.py\n",
        "pkg/keep.log": "kept", "pkg/other.log": "x", "pkg/generated_x.py": "g", "pkg/mod.py": "m",
        "pkg/sub/deep.log": "x", "pkg/sub/code.py": "c",
    })
    found, skipped = paths(tmp_path)
    assert sorted(found) == [".gitignore", "a.py", "pkg/.gitignore", "pkg/keep.log",
                             "pkg/mod.py", "pkg/sub/code.py"]
    assert skipped["gitignored"] == 5  # debug.log, secret/, other.log, generated_x.py, deep.log


def test_default_excludes_and_size_limit(tmp_path):
    make_tree(tmp_path, {
        "src/main.py": "print(1)", ".git/config": "x", "node_modules/lib/index.js": "x",
        "build/out.py": "x", "src/__pycache__/m.pyc": "x", "big.txt": "x" * 2000,
        "empty.py": "", "env1/pyvenv.cfg": "home = /usr", "env1/lib/site.py": "x",
        "venv/__init__.py": "a package named venv is code",
    })
    found, skipped = paths(tmp_path, max_file_size=1000)
    assert sorted(found) == ["empty.py", "src/main.py", "venv/__init__.py"]
    assert skipped["excluded"] == 5
    assert skipped["too_large"] == 1


def test_symlinks_and_fifos_are_skipped(tmp_path):
    make_tree(tmp_path, {"real.py": "x"})
    os.symlink(tmp_path / "real.py", tmp_path / "link.py")
    os.symlink("/", tmp_path / "rootlink")
    os.mkfifo(tmp_path / "pipe")
    found, skipped = paths(tmp_path)
    assert found == ["real.py"]
    assert skipped == Counter({"symlink": 2, "not_regular": 1})


def test_discover_to_file_streams_json_lines(tmp_path):
    src = tmp_path / "src"
    make_tree(src, {"a b.py": "1", "dir/ünï\ncode.py": "22"})
    listing = tmp_path / "files.jsonl"
    result = discover_to_file(src, listing)
    entries = [FileEntry.from_json(line) for line in listing.read_text().splitlines()]
    assert [e.path for e in entries] == ["a b.py", "dir/ünï\ncode.py"]
    assert [e.size for e in entries] == [1, 2]
    assert result.files == 2 and result.total_bytes == 3


def test_names_that_are_not_utf8_are_counted_not_fatal(tmp_path):
    make_tree(tmp_path, {"ok.py": "x"})
    bad = os.path.join(os.fsencode(tmp_path), b"caf\xe9.py")
    with open(bad, "wb") as fh:
        fh.write(b"y = 1\n")
    found, skipped = paths(tmp_path)
    assert found == ["ok.py"]
    assert skipped["undecodable_name"] == 1


def test_path_rules_decide_each_path_as_the_walk_does(tmp_path):
    """A watcher asks about one path at a time: every file of a tree the walk would index,
    and only those, passes PathRules."""
    from beam_pipeline.source.discover import PathRules, iter_source_files

    tree = tmp_path / "src"
    make_tree(tree, {
        ".gitignore": "*.log\ngen/\n!keep.log\n",
        "a.py": "x = 1\n", "debug.log": "x\n", "keep.log": "x\n",
        "gen/out.py": "x = 1\n", "pkg/.gitignore": "generated_*.py\n/local.py\n",
        "pkg/m.py": "x = 1\n", "pkg/generated_1.py": "x = 1\n", "pkg/local.py": "x = 1\n",
        "pkg/sub/local.py": "x = 1\n", "pkg/sub/deep/.gitignore": "!generated_2.py\n",
        "pkg/sub/deep/generated_2.py": "x = 1\n", "node_modules/lib/index.js": "x\n",
        ".git/config": "x\n", "env/pyvenv.cfg": "x\n", "env/lib/site.py": "x = 1\n",
        ".env": "SECRET=1\n", "id_rsa": "key\n", "docs/notes.md": "# notes\n"})
    walked = {entry.path for entry in iter_source_files(tree)}
    rules = PathRules(tree)
    every = {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()}
    passed = {rel for rel in every if rules.skip_reason(rel) is None}
    assert passed == walked
    assert {"a.py", "keep.log", "pkg/m.py", "pkg/sub/local.py", "pkg/sub/deep/generated_2.py",
            "docs/notes.md"} <= walked
    reasons = {rel: rules.skip_reason(rel) for rel in ("debug.log", "gen/out.py",
                                                       "node_modules/lib/index.js",
                                                       "env/lib/site.py", ".env")}
    assert reasons == {"debug.log": "gitignored", "gen/out.py": "gitignored",
                       "node_modules/lib/index.js": "excluded", "env/lib/site.py": "excluded",
                       ".env": "secret"}
