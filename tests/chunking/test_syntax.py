"""--chunker syntax: code cut at its definitions with tree-sitter, exact lines, counted fallbacks."""

import itertools
import json
import os
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import BEAM_INDEX, make_tree
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.chunking import chunk_text, syntax
from beam_pipeline.chunking.syntax import NoSyntax, syntax_chunks
from beam_pipeline.search import Index, shard_names


def python_function(name: str, body_lines: int) -> str:
    body = "".join(f"    {name}_v{i} = {i} * value  # step {i}\n" for i in range(body_lines))
    return f"def {name}(value):\n    \"\"\"{name} doc.\"\"\"\n{body}    return value\n"


def check_exact(text: str, chunks, size: int) -> None:
    """Every chunk is the text's slice, within the size, with exact 1-based lines; without
    overlaps they join into the whole file."""
    for chunk in chunks:
        assert chunk.text == text[chunk.char_start:chunk.char_end]
        assert len(chunk.text) <= size
        assert chunk.line_start == text.count("\n", 0, chunk.char_start) + 1
        assert chunk.line_end == text.count("\n", 0, chunk.char_end - 1) + 1
        assert chunk.text.strip()
    assert [c.index for c in chunks] == list(range(len(chunks)))
    ends = [c.char_end for c in chunks]
    assert all(a.char_end <= b.char_start for a, b in itertools.pairwise(chunks)), ends
    gaps = [text[a.char_end:b.char_start] for a, b in itertools.pairwise(chunks)]
    assert all(not gap.strip() for gap in gaps), "only blank lines fall between chunks"


def test_functions_that_fit_are_never_split_and_chunks_start_at_definitions():
    text = "import os\n\n\n" + "\n\n".join(python_function(f"f{i}", 3 + i % 9)
                                            for i in range(30))
    chunks = syntax_chunks(text, "m.py", 1000, 150)
    check_exact(text, chunks, 1000)
    assert len(chunks) > 3
    for i in range(30):  # each function lies wholly inside one chunk
        head = text.index(f"def f{i}(")
        tail = text.index("    return value\n", head)
        assert any(c.char_start <= head and tail < c.char_end for c in chunks), i
    for chunk in chunks[1:]:
        assert chunk.text.lstrip("\n").startswith("def "), chunk.text[:40]
    # The fixed chunker, by contrast, cuts mid-line.
    assert any(not c.text.startswith(("def", "\n", " ")) for c in chunk_text(text, 1000, 150))


def test_a_class_too_big_for_one_chunk_is_cut_between_methods_with_its_header_first():
    methods = "\n".join("    " + python_function(f"method{i}", 12).replace("\n", "\n    ")
                        .rstrip(" ") for i in range(8))
    text = f"class Big:\n    \"\"\"A class.\"\"\"\n\n{methods}"
    chunks = syntax_chunks(text, "big.py", 800, 120)
    check_exact(text, chunks, 800)
    assert chunks[0].text.startswith("class Big:") and "def method0" in chunks[0].text
    for chunk in chunks[1:]:
        assert chunk.text.lstrip("\n").startswith("    def method"), chunk.text[:40]


def test_a_long_string_is_cut_on_whole_lines_and_a_long_line_by_size():
    lines = "".join(f"line {i} of a long literal\n" for i in range(200))
    text = f'DATA = """\n{lines}"""\nWIDE = "{"x" * 2500}"\n\ndef after():\n    return 1\n'
    chunks = syntax_chunks(text, "data.py", 500, 50)
    for chunk in chunks:
        assert chunk.text == text[chunk.char_start:chunk.char_end] and len(chunk.text) <= 500
        assert chunk.line_start == text.count("\n", 0, chunk.char_start) + 1
    wide = [c for c in chunks if "xxxxx" in c.text]
    assert len(wide) >= 5 and all(c.line_start == c.line_end for c in wide)
    assert all(a.char_end - b.char_start == 50 for a, b in itertools.pairwise(wide))  # the overlap
    literal = [c for c in chunks if "of a long literal" in c.text]
    assert all(c.char_start == 0 or text[c.char_start - 1] == "\n" for c in literal)
    assert chunks[-1].text.lstrip("\n").startswith("def after")


@pytest.mark.parametrize("path,source", [
    ("web/app.js", "".join(f"function handler{i}(req) {{\n" + "  const x = req.body;\n" * 12
                           + "  return x;\n}\n\n" for i in range(12))),
    ("web/app.ts", "".join(f"export function typed{i}(a: number): number {{\n"
                           + "  a = a + 1;\n" * 12 + "  return a;\n}\n\n" for i in range(12))),
    ("cmd/main.go", "package main\n\n" + "".join(f"func Run{i}(n int) int {{\n" + "\tn++\n" * 15
                                                 + "\treturn n\n}\n\n" for i in range(12))),
    ("src/lib.rs", "".join(f"pub fn step{i}(n: u32) -> u32 {{\n" + "    let n = n + 1;\n" * 12
                           + "    n\n}\n\n" for i in range(12))),
    ("src/Main.java", "class Main {\n" + "".join(f"  int m{i}(int n) {{\n" + "    n++;\n" * 15
                                                 + "    return n;\n  }\n\n" for i in range(12))
     + "}\n"),
])
def test_other_languages_are_cut_at_their_functions(path, source):
    chunks = syntax_chunks(source, path, 600, 90)
    check_exact(source, chunks, 600)
    starts = ("function", "export function", "func ", "pub fn", "class Main", "  int m")
    assert len(chunks) >= 3
    for chunk in chunks[1:]:  # the first starts with the file (a package line, an import)
        assert chunk.text.lstrip("\n").startswith(starts), (path, chunk.text[:40])


def test_fallback_reasons(monkeypatch):
    with pytest.raises(NoSyntax) as caught:
        syntax_chunks("# Title\n\ntext\n", "README.md", 1000, 150)
    assert caught.value.reason == syntax.NO_GRAMMAR
    with pytest.raises(NoSyntax) as caught:
        syntax_chunks("def broken(:\n    pass\n", "bad.py", 1000, 150)
    assert caught.value.reason == syntax.PARSE_ERROR
    # A grammar wheel that is not installed where the file is cut.
    monkeypatch.setitem(syntax.GRAMMARS, "ruby", ("tree_sitter_not_installed_here", "language"))
    syntax._parsers.__dict__.pop("ruby", None)
    with pytest.raises(NoSyntax) as caught:
        syntax_chunks("def x\n  1\nend\n", "a.rb", 1000, 150)
    assert caught.value.reason == syntax.GRAMMAR_NOT_INSTALLED
    syntax._parsers.__dict__.pop("ruby", None)


class CountedText(str):
    """Text that counts the characters its methods scan and slice: the chunkers' work, which
    a test can compare across sizes (a clock could not be trusted in CI)."""

    work = 0

    def _scanned(self, start, end) -> int:
        return len(range(*slice(start, end).indices(len(self))))

    def count(self, sub, start=None, end=None):
        CountedText.work += self._scanned(start, end)
        return super().count(sub, start, end)

    def __getitem__(self, key):
        CountedText.work += self._scanned(key.start, key.stop) if isinstance(key, slice) else 1
        return super().__getitem__(key)

    def split(self, *args, **kwargs):
        CountedText.work += len(self)
        return super().split(*args, **kwargs)

    def strip(self, *args):
        CountedText.work += len(self)
        return super().strip(*args)

    def isspace(self):
        CountedText.work += len(self)
        return super().isspace()


def _cut_counted(text: str, path: str) -> tuple[list, str | None, int]:
    from beam_pipeline.chunking.cut import cut
    from beam_pipeline.source.text import SYNTAX, ChunkerConfig

    CountedText.work = 0
    config = ChunkerConfig(root=".", chunk_size=1000, overlap=150, max_file_size=10**8,
                           chunker=SYNTAX)
    chunks, reason = cut(config, path, CountedText(text))
    return chunks, reason, CountedText.work


@pytest.mark.parametrize("path, unit", [("bundle.min.js", "var x=1+1;"), ("gen.py", "x = 1; ")])
def test_a_long_line_is_cut_by_size_without_parsing_and_in_linear_work(path, unit):
    """Issue 35: a minified 10 MB line took the syntax chunker 7 s and 2 GB (tree-sitter's
    nodes); it is cut by size, and the work grows with the text, not faster."""
    works = {}
    for n in (20_000, 80_000):  # 200 kB and 800 kB of one line
        text = unit * n
        chunks, reason, works[n] = _cut_counted(text, path)
        assert reason == syntax.MINIFIED
        assert chunks == chunk_text(text, 1000, 150) and chunks[-1].char_end == len(text)
        assert all(c.line_start == c.line_end == 1 for c in chunks)
    size = len(unit) * 20_000
    assert works[20_000] <= 8 * size  # a few passes over the text, its slices included
    assert works[80_000] <= 4.4 * works[20_000]  # linear: 4× the text, 4× the work


def test_minified_code_is_decided_by_its_lines_and_ordinary_code_is_still_parsed():
    size = 1000
    wide = "x = [" + "1, " * 4000 + "]\n"  # one line of 12 chunks in ordinary code
    with pytest.raises(NoSyntax, match=syntax.MINIFIED):
        syntax_chunks(python_function("f", 5) + wide, "data.py", size, 150)
    dense = "".join(f"a{i} = [{', '.join(['1'] * 120)}]\n" for i in range(40))  # 370-char lines
    with pytest.raises(NoSyntax, match=syntax.MINIFIED):
        syntax_chunks(dense, "table.py", size, 150)
    # Below both: parsed, even with a line of 5 chunks, and a text of 10 chunks or fewer
    # whatever its lines.
    text = python_function("f", 5) + "y = [" + "1, " * 1600 + "]\n"
    assert syntax_chunks(text, "ok.py", size, 150)[0].text.startswith("def f(")
    assert syntax_chunks("z = '" + "q" * 900 + "'\n", "short.py", size, 150)


line = st.one_of(
    st.sampled_from(["", "x = 1", "    y = x", "# note", "pass", "    return y"]),
    st.builds(lambda n, w: f"def f{n}(a):\n    return a + {'1' * w}", st.integers(0, 99),
              st.integers(1, 300)),
    st.builds(lambda n: f"class C{n}:\n    z = 1", st.integers(0, 99)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(line, max_size=80), st.integers(40, 600), st.booleans())
def test_any_parsed_python_gets_exact_lines_and_loses_nothing(lines, size, crlf):
    text = ("\r\n" if crlf else "\n").join(lines)
    try:
        chunks = syntax_chunks(text, "gen.py", size, size // 7)
    except NoSyntax as exc:
        assert exc.reason == syntax.PARSE_ERROR
        return
    for chunk in chunks:
        assert chunk.text == text[chunk.char_start:chunk.char_end] and len(chunk.text) <= size
        assert chunk.line_start == text.count("\n", 0, chunk.char_start) + 1
        assert chunk.line_end == text.count("\n", 0, max(chunk.char_start, chunk.char_end - 1)) + 1
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.char_start, chunk.char_end))
    assert all(i in covered or text[i].isspace() for i in range(len(text)))


def _tree(root):
    files = {f"pkg/m{i}.py": "\n\n".join(python_function(f"m{i}_f{j}", 4 + j) for j in range(6))
             for i in range(4)}
    files["pkg/broken.py"] = "def broken(:\n    pass\n" * 40
    files["docs/guide.md"] = "# Guide\n\n" + "Some words about the package.\n" * 80
    return make_tree(root, files)


def test_the_pipeline_cuts_by_syntax_counts_fallbacks_and_fingerprints_the_chunker(tmp_path):
    src, out = _tree(tmp_path / "src"), tmp_path / "out"
    stats = run_index(src, out, IndexSettings.create("hashing", chunk_size=400,
                                                     chunker="syntax"), quiet=True)
    assert stats.committed and stats.failed_files == 0
    assert stats.fixed_chunks_by_reason == {"no_grammar": 1, "parse_error": 1}
    index = Index.open(out)
    assert index.fingerprint["chunker"]["name"] == "syntax"
    rows = pa.concat_tables(pq.read_table(index.shard_path(name))
                            for name in shard_names(index.manifest))
    assert rows.num_rows == stats.chunks_created > 0
    for path, start, end, content in zip(*(rows[c].to_pylist() for c in (
            "path", "line_start", "line_end", "content"))):
        lines = (src / path).read_text().split("\n")
        if path.startswith("pkg/m"):  # cut by syntax: a row is exactly its lines
            assert "\n".join(lines[start - 1:end]) == content.removesuffix("\n"), (path, start)
            assert content.lstrip("\n").startswith("def "), content[:40]
        else:  # the fixed chunker's rows start and end anywhere in their first and last line
            assert content.strip() in "\n".join(lines[start - 1:end]), (path, start)

    # Another chunker is another index: the next run rebuilds, with the reason said.
    again = run_index(src, out, IndexSettings.create("hashing", chunk_size=400,
                                                     chunker="fixed"), quiet=True)
    assert again.rebuild_reason and "chunker" in again.rebuild_reason
    assert again.fixed_chunks_by_reason == {}


def test_auto_keeps_the_live_snapshots_chunker_and_cuts_new_indexes_by_syntax(tmp_path):
    src = _tree(tmp_path / "src")
    fixed, fresh = tmp_path / "fixed", tmp_path / "fresh"
    run_index(src, fixed, IndexSettings.create("hashing", chunker="fixed"), quiet=True)
    (src / "pkg" / "m0.py").write_text(python_function("changed", 5))
    kept = run_index(src, fixed, IndexSettings.create("hashing"), quiet=True)  # auto
    assert kept.rebuild_reason is None and kept.files_changed == 1, "no re-embedding"
    assert Index.open(fixed).fingerprint["chunker"]["name"] == "fixed-chars"
    rebuilt = run_index(src, fixed, IndexSettings.create("hashing"), quiet=True, full=True)
    assert rebuilt.rebuild_reason == "--full given"
    assert Index.open(fixed).fingerprint["chunker"]["name"] == "syntax"
    run_index(src, fresh, IndexSettings.create("hashing"), quiet=True)
    assert Index.open(fresh).fingerprint["chunker"]["name"] == "syntax"
    with pytest.raises(ValueError, match="unknown chunker"):
        IndexSettings.create("hashing", chunker="ast")


def test_syntax_chunks_need_no_network_and_no_cache(tmp_path):
    """The grammar wheels carry their parsers: with no network and an empty HOME, nothing is
    fetched and nothing falls back."""
    probe = subprocess.run(["unshare", "--net", "--map-root-user", "true"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"this machine does not permit unshare --net: {probe.stderr.strip()}")
    src = make_tree(tmp_path / "src", {
        "a.py": "def a():\n    return 1\n", "b.ts": "export function b(): number {\n  return 2;\n}\n",
        "c.go": "package c\n\nfunc C() int {\n\treturn 3\n}\n", "d.rs": "fn d() -> u8 {\n    4\n}\n",
        "e.java": "class E {\n  int e() { return 5; }\n}\n", "f.rb": "def f\n  6\nend\n",
        "g.c": "int g(void) {\n  return 7;\n}\n", "h.cpp": "int h() {\n  return 8;\n}\n",
        "i.cs": "class I {\n  int i() { return 9; }\n}\n", "j.jsx": "function J() {\n  return <p/>;\n}\n",
        "k.tsx": "export const K = () => <div/>;\n"})
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1",
           "XDG_CACHE_HOME": str(home / ".cache")}
    done = subprocess.run(["unshare", "--net", "--map-root-user", *BEAM_INDEX, "index", str(src),
                           "-o", str(tmp_path / "out"), "-q", "--chunker", "syntax",
                           "--stats-json", str(tmp_path / "stats.json")],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["files_processed"] == 11 and stats["fixed_chunks_by_reason"] == {}
    assert not any(home.iterdir()), "nothing was cached or fetched"


def test_an_unresolved_auto_chunker_has_no_fingerprint():
    settings = IndexSettings.create("hashing")
    with pytest.raises(ValueError, match="still 'auto'"):
        settings.fingerprint()
    assert settings.for_previous(None).fingerprint()["chunker"]["name"] == "syntax"
