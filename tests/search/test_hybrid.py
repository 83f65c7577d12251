"""Search modes, filters and hits (issue 15) on real indexes: lexical, vector and hybrid."""

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import code_file, make_tree, run_cli

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.layout.schema import MANIFEST_FILE
from beam_pipeline.lexical import LEXICAL_DIR
from beam_pipeline.search import Index, IndexReadError, SearchError
from beam_pipeline.store.verify import verify_index


def config_module() -> str:
    return ("import json\n\n\ndef readConfigFile(path):\n    \"\"\"Parse the settings file.\"\"\"\n"
            "    with open(path) as fh:\n        return json.load(fh)\n\n\n"
            "def read_config(path):\n    return readConfigFile(path)\n")


TREE = {
    "pkg/config.py": config_module(),
    "pkg/server.py": ("import socket\n\n\nclass EchoServer:\n    def handle_request(self, sock):\n"
                      "        sock.sendall(sock.recv(4096))\n"),
    "pkg/filler.py": code_file("filler", 80),
    "web/app.js": ("function readconfig(url) {\n  return fetch(url).then(r => r.json());\n}\n"
                   "export const ReadConfig = readconfig;\n"),
    "docs/guide.md": "# Guide\n\nThe server reads its config at start-up.\n" * 3,
    "tests/test_config.py": "from pkg.config import read_config\n\n\n"
                            "def test_read_config():\n    assert read_config\n",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("hybrid")
    src = make_tree(root / "src", TREE)
    out = root / "out"
    # Small chunks: files span several rows, so snippets need their neighbours.
    run_index(src, out, IndexSettings.create(chunk_size=120))
    return src, out


@pytest.fixture(scope="module")
def index(built):
    return Index.open(built[1])


def test_the_snapshot_holds_a_lexical_index_listed_in_its_manifest(built, index):
    entry = index.manifest["lexical"]
    assert entry["engine"] == "tantivy" and entry["docs"] == index.manifest["counts"]["rows"]
    folder = Path(index.directory) / LEXICAL_DIR
    assert {f["name"] for f in entry["files"]} <= {p.name for p in folder.iterdir()}
    assert verify_index(built[1]) == []


def test_fts_with_an_identifier_returns_only_rows_holding_it(index):
    hits = index.search("readConfigFile", 10, mode="fts")
    assert hits and hits[0]["path"] == "pkg/config.py"
    assert all("readconfigfile" in hit["content"].lower() for hit in hits)
    # The same identifier in snake_case is another name: not required to match.
    snake = index.search("read_config", 10, mode="fts")
    assert {hit["path"] for hit in snake} == {"pkg/config.py", "tests/test_config.py"}
    assert all("read_config" in hit["content"] for hit in snake)


def test_fts_words_find_the_pieces_of_identifiers(index):
    # "request" is only ever part of handle_request; "echo" only of EchoServer.
    for word, path in (("request", "pkg/server.py"), ("echo", "pkg/server.py")):
        hits = index.search(word, 5, mode="fts")
        assert hits and hits[0]["path"] == path
        assert all(word in hit["content"].lower() for hit in hits)


def test_every_fts_hit_holds_a_query_term(index):
    query = "settings socket guide"
    hits = index.search(query, 20, mode="fts")
    assert len(hits) >= 3
    for hit in hits:
        assert any(word in hit["content"].lower() for word in query.split()), hit


def test_case_sensitive_and_fuzzy(index):
    blind = {hit["path"] for hit in index.search("ReadConfig", 10, mode="fts")}
    assert {"web/app.js"} <= blind
    exact = index.search("ReadConfig", 10, mode="fts", case_sensitive=True)
    assert exact and all("ReadConfig" in hit["content"] for hit in exact)
    assert not any(hit["path"] == "tests/test_config.py" for hit in exact)
    fuzzy = index.search("readConfgFile", 5, mode="fts", fuzzy=True)
    assert fuzzy and fuzzy[0]["path"] == "pkg/config.py"
    assert index.search("readConfgFile", 5, mode="fts") == []


def test_regex_matches_raw_text(index):
    hits = index.search(r"def \w+\(path\)", 10, mode="fts", regex=True)
    assert {hit["path"] for hit in hits} == {"pkg/config.py"}
    assert all(re.search(r"def \w+\(path\)", hit["content"]) for hit in hits)
    assert index.search(r"ECHOSERVER", 5, mode="fts", regex=True, case_sensitive=True) == []
    assert index.search(r"ECHOSERVER", 5, mode="fts", regex=True)[0]["path"] == "pkg/server.py"
    with pytest.raises(SearchError, match="regular expression"):
        index.search("(unclosed", 5, mode="fts", regex=True)


@pytest.mark.parametrize("mode", ["hybrid", "fts", "semantic"])
def test_filters_hold_for_every_hit_and_apply_before_ranking(index, mode):
    python = index.search("config server", 10, mode=mode, languages=("python",))
    assert python and all(hit["language"] == "python" for hit in python)
    others = index.search("config server", 10, mode=mode, exclude_languages=("python",))
    assert others and all(hit["language"] != "python" for hit in others)
    inside = index.search("config server", 10, mode=mode, path_filters=("pkg/**",),
                          exclude_paths=("pkg/filler.py",))
    assert inside and all(hit["path"] in ("pkg/config.py", "pkg/server.py") for hit in inside)
    by_name = index.search("config", 10, mode=mode, path_filters=("*.md",))
    assert by_name and {hit["path"] for hit in by_name} == {"docs/guide.md"}
    # Most files pass: the lexical query names the few kept out instead.
    no_docs = index.search("config guide", 10, mode=mode, exclude_paths=("*.md",))
    assert no_docs and not any(hit["path"].endswith(".md") for hit in no_docs)
    # filler.py says nothing about config; filtered to it, a search still fills k.
    if mode != "fts":
        only = index.search("config server", 5, mode=mode, path_filters=("pkg/filler.py",))
        assert len(only) == 5 and {hit["path"] for hit in only} == {"pkg/filler.py"}


def test_hybrid_fuses_both_lists(index):
    hits = index.search("readConfigFile parse settings", 5)
    assert hits[0]["path"] == "pkg/config.py" and hits[0]["mode"] == "hybrid"
    assert hits[0]["ranks"]["fts"] is not None and hits[0]["ranks"]["semantic"] is not None
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


SCORED = [  # mode, query, options, the file that answers it
    ("hybrid", "where is the settings file parsed", {}, "pkg/config.py"),
    ("hybrid", "readConfigFile", {}, "pkg/config.py"),
    ("semantic", "parse the settings file", {}, "pkg/config.py"),
    ("fts", "config settings", {}, "pkg/config.py"),
    ("fts", "config|socket", {"regex": True}, "tests/test_config.py"),
    ("fts", "readconfigfle settings", {"fuzzy": True}, "pkg/config.py"),
]


@pytest.mark.parametrize("mode, query, options, answer", SCORED)
def test_every_mode_scores_in_0_1_and_min_score_filters_the_shown_score(
        index, mode, query, options, answer):
    hits = index.search(query, 10, mode=mode, **options)
    assert hits[0]["path"] == answer
    assert all(0 <= hit["score"] <= 1 for hit in hits)
    # The weak hits a user would not want (the filler module answers nothing asked here)
    # score under 0.5, and 0.5 removes them and nothing else.
    weak = [hit for hit in hits if hit["score"] < 0.5]
    assert weak
    strong = index.search(query, 10, mode=mode, min_score=0.5, **options)
    assert strong and strong[0]["path"] == answer
    assert all(hit["score"] >= 0.5 for hit in strong)
    assert [(h["path"], h["line_start"]) for h in strong] == [
        (h["path"], h["line_start"]) for h in hits if h["score"] >= 0.5]
    assert not any(hit["path"] == "pkg/filler.py" for hit in strong)
    files = index.search(query, 10, mode=mode, min_score=0.5, files_only=True, **options)
    assert files and all(hit["score"] >= 0.5 for hit in files)


@pytest.mark.parametrize("mode, query, options, answer", SCORED)
def test_the_cli_prints_and_filters_the_same_score(built, mode, query, options, answer):
    out = built[1]
    flags = [*({"semantic": ["--semantic"], "fts": ["--fts"]}.get(mode, [])),
             *(f"--{name}" for name in options)]
    every = json.loads(run_cli("search", out, query, "--json", *flags).stdout)
    assert any(hit["score"] < 0.5 for hit in every), "nothing for the minimum to remove"
    proc = run_cli("search", out, query, "--json", "--min-score", "0.5", *flags)
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert hits and all(0.5 <= hit["score"] <= 1 for hit in hits)
    assert len(hits) == sum(hit["score"] >= 0.5 for hit in every)
    # The terminal shows the number the JSON has and the minimum compares.
    text = run_cli("search", out, query, "--min-score", "0.5", *flags).stdout
    shown = re.findall(r"^(\S+):\d+-\d+  (\d\.\d{3})$", text, re.MULTILINE)
    assert shown == [(hit["path"], f"{hit['score']:.3f}") for hit in hits]


def test_each_list_keeps_its_own_score_and_rank(built):
    hits = json.loads(run_cli("search", built[1], "where is the settings file parsed",
                              "--json").stdout)
    # The lists' raw numbers stay in the JSON: BM25 is not in [0, 1], a cosine is.
    assert hits[0]["ranks"]["fts"] == 1 and hits[0]["fts_score"] > 1
    assert 0 < hits[0]["semantic_score"] <= 1
    missing = [hit for hit in hits if hit["ranks"]["fts"] is None]
    assert missing and all(hit["fts_score"] is None for hit in missing)
    refused = run_cli("search", built[1], "config", "--min-score", "3")
    assert refused.returncode != 0 and "outside [0, 1]" in refused.stderr


def test_min_score_and_files_only(index):
    hits = index.search("filler value", 10, mode="semantic", min_score=0.3)
    assert hits and all(hit["score"] >= 0.3 for hit in hits)
    files = index.search("config", 10, files_only=True)
    assert len({hit["path"] for hit in files}) == len(files) > 2


def test_snippets_are_whole_lines_of_the_indexed_text(built, index):
    src, _ = built
    for query, mode in (("filler_40", "fts"), ("handle_request", "fts"), ("settings", "hybrid")):
        for hit in index.search(query, 5, mode=mode):
            lines = (src / hit["path"]).read_text().split("\n")
            expected = "\n".join(lines[hit["line_start"] - 1:hit["line_end"]])
            assert hit["snippet"] == expected.rstrip("\n"), (hit["path"], hit["line_start"])


def test_an_older_snapshot_without_a_lexical_index(tmp_path):
    src = make_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    run_index(src, out)
    index = Index.open(out)
    manifest_path = Path(index.directory) / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    del manifest["lexical"]  # as an older version wrote it
    manifest_path.write_text(json.dumps(manifest))
    shutil.rmtree(Path(index.directory) / LEXICAL_DIR)
    assert verify_index(out) == []
    old = Index.open(out)
    hits = old.search("readConfigFile", 3)
    assert hits and hits[0]["mode"] == "hybrid"
    with pytest.raises(IndexReadError, match="no lexical index"):
        old.search("readConfigFile", 3, mode="fts")
    proc = run_cli("search", out, "readConfigFile", "-k", "1")
    assert proc.returncode == 0 and "no lexical index" in proc.stderr
    # Nothing changed, but the next run adds the index; the one after is up to date.
    stats = run_index(src, out)
    assert stats.committed and not stats.up_to_date
    assert Index.open(out).search("readConfigFile", 3, mode="fts")[0]["path"] == "pkg/config.py"
    assert verify_index(out) == []
    assert run_index(src, out).up_to_date


def test_a_re_index_carries_the_lexical_index_forward(tmp_path):
    src = make_tree(tmp_path / "src", TREE)
    out = tmp_path / "out"
    run_index(src, out)
    (src / "pkg/server.py").write_text("class GopherServer:\n    pass\n")
    (src / "docs/guide.md").unlink()
    (src / "pkg/new.py").write_text("def brand_new_function():\n    return 1\n")
    stats = run_index(src, out)
    assert stats.committed
    index = Index.open(out)
    assert verify_index(out) == []
    assert index.search("GopherServer", 5, mode="fts")[0]["path"] == "pkg/server.py"
    assert index.search("EchoServer", 5, mode="fts") == []
    assert index.search("guide", 5, mode="fts") == []
    assert index.search("brand_new_function", 5, mode="fts")[0]["path"] == "pkg/new.py"
    assert index.search("readConfigFile", 5, mode="fts")[0]["path"] == "pkg/config.py"


def test_verify_finds_a_damaged_lexical_index(built, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(built[1], copy)
    index = Index.open(copy)
    victim = next(f["name"] for f in index.manifest["lexical"]["files"]
                  if f["name"] != "meta.json")
    (Path(index.directory) / LEXICAL_DIR / victim).unlink()
    problems = verify_index(copy)
    assert problems == [f"lexical index: {victim} is missing"]


def test_cli_modes_filters_and_json(built):
    _, out = built
    proc = run_cli("search", out, "read_config", "--fts", "--path-filter", "tests/**", "--json")
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert hits and all(hit["path"].startswith("tests/") for hit in hits)
    assert all(hit["mode"] == "fts" and "snippet" in hit for hit in hits)
    text = run_cli("search", out, "EchoServer", "--fts", "-k", "1").stdout
    assert text.startswith("pkg/server.py:") and "│ class EchoServer:" in text
    files = run_cli("search", out, "config", "--files-only", "--limit", "3").stdout.split("\n")
    assert len([line for line in files if line]) == 3
    bad = run_cli("search", out, "x", "--regex")
    assert bad.returncode == 1 and "need --fts" in bad.stderr
