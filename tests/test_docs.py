"""Docs that cannot rot: every shell block of README.md and docs/ runs here or says why not,
every Python example runs here, and every flag a page gives `beam-index` exists."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import code_file, make_tree

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")
SHELL = {"bash", "sh", "shell"}
# Pages whose inline `--flags` are beam-index's (the others also quote the benchmarks' own).
FLAG_PAGES = {"README.md", "usage.md", "search.md", "layout.md", "scale.md"}


def blocks(language: set[str] | None = None):
    """(page, line, language, body, why-not-run or None) for each fenced block."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if language is not None and match.group(1) not in language:
                continue
            line = text.count("\n", 0, match.start()) + 1
            before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = NOT_RUN.search(before)
            yield (page, line, match.group(1), match.group(2),
                   marker.group(1) if marker else None)


def test_every_page_exists_and_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = ["usage", "search", "layout", "scale", "performance", "architecture"]
    assert sorted(p.stem for p in PAGES[1:]) == sorted(names)
    for name in names:
        assert f"(docs/{name}.md)" in readme, name
    assert len(readme.splitlines()) <= 250


def test_the_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = [body for page, _, lang, body, _ in blocks(SHELL) if page.name == "README.md"][:2]
    assert "beam-index index" in first[0] and "pip install -e ." in first[0]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pytest -q -m \"slow or not slow\"" in first[1]
    assert first[1].split("pip install", 1)[1].strip() in ci.replace("pip install -q", "pip install")
    assert readme.index(first[0]) < readme.index("## A quick tour")


def test_every_block_is_a_known_kind_and_every_unrun_shell_block_says_why():
    unmarked = []
    for page, line, language, body, why in blocks():
        assert language, f"{page.name}:{line}: a block without a language (text, bash, …)"
        if language in SHELL and why is None and (page.name, line) not in RUN_BY_TESTS:
            unmarked.append(f"{page.name}:{line}")
    assert unmarked == [], "shell blocks neither run by tests/test_docs.py nor marked " \
                           "<!-- not run: reason -->"


# The shell blocks this file runs, by (page, first line): kept in step with the tests below.
RUN_BY_TESTS: set[tuple[str, int]] = set()


def _shell_block(page: str, starts_with: str) -> tuple[int, str]:
    for path, line, _, body, why in blocks(SHELL):
        if path.name == page and body.startswith(starts_with):
            assert why is None, f"{page}:{line} is marked not run but a test runs it"
            RUN_BY_TESTS.add((page, line))
            return line, body
    raise AssertionError(f"no shell block in {page} starting {starts_with!r}")


QUICK_TOUR = _shell_block("README.md", "beam-index index ~/src/project")


def test_the_readme_quick_tour_runs_as_written(tmp_path):
    home = tmp_path / "home"
    make_tree(home / "src" / "project", {
        "app/config.py": "def read_config(path):\n    return open(path).read()\n",
        "app/upload.py": "def upload(data, retries=3):\n    # retry a failed upload\n"
                         "    return data\n",
        **{f"lib/m{i}.py": code_file(f"m{i}", 5) for i in range(5)}})
    env = {**os.environ, "HOME": str(home),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", QUICK_TOUR[1]], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"path": "app/config.py"' in done.stdout  # the --json search found the definition
    assert "./index: sound" in done.stderr


def _python_examples():
    return [pytest.param(body, id=f"{page.name}:{line}")
            for page, line, _, body, why in blocks({"python"}) if why is None]


@pytest.mark.parametrize("example", _python_examples())
def test_every_python_example_runs(example, tmp_path, monkeypatch):
    """Each example runs in a folder holding what its names refer to: a tree `repo`, its file
    list `files.jsonl`, `files` and a progress callback."""
    from beam_pipeline.source.discover import discover_to_file

    repo = make_tree(tmp_path / "repo", {f"pkg/m{i}.py": code_file(f"m{i}", 8) for i in range(4)})
    discover_to_file(repo, tmp_path / "files.jsonl")
    monkeypatch.chdir(tmp_path)
    heard = []
    scope = {"files": [f"pkg/m{i}.py" for i in range(4)],
             "progress_callback": lambda *args, **kwargs: heard.append(args),
             "cb": lambda *args, **kwargs: heard.append(args), "__name__": "__docs__"}
    exec(compile(example, "<docs>", "exec"), scope)  # noqa: S102 - our own documentation


def _beam_index_flags() -> set[str]:
    from beam_pipeline.cli import build_parser

    parser = build_parser()
    flags = set(parser._option_string_actions)
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            flags |= set(sub._option_string_actions)
    return {f for f in flags if f.startswith("--")}


def _named_flags(pages=None):
    """(page, line, flag) for each `--flag` a page gives beam-index: on a line of a
    `beam-index` command, in an options table, or in inline code on the pages about beam-index
    itself. `pages`: (file name, text) pairs; README.md and docs/ by default."""
    if pages is None:
        pages = [(page.name, page.read_text(encoding="utf-8")) for page in PAGES]
    for name, text in pages:
        for number, line in enumerate(text.splitlines(), 1):
            spans = re.findall(r"`([^`]+)`", line)
            # A command line: what follows `beam-index` (before it: another program's flags).
            texts = [line[line.index("beam-index "):]] if "beam-index " in line else []
            if line.startswith("| `--"):
                texts.append(spans[0])
            elif name in FLAG_PAGES:
                texts += [s for s in spans if s.startswith("--")]
            for text in texts:
                # `--flag` and `--s3_*` stand for flags; they name none.
                for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*(?![\w*])", text):
                    if flag != "--flag":
                        yield name, number, flag


def test_every_flag_a_page_gives_beam_index_exists():
    from apache_beam.options.pipeline_options import PipelineOptions

    ours = _beam_index_flags()
    beams = {f"--{name}" for name in PipelineOptions([]).get_all_options()}  # passed through
    named = list(_named_flags())
    assert len(named) > 50  # the pages were read
    missing = sorted(f"{page}:{number} {flag}" for page, number, flag in named
                     if flag not in ours and flag not in beams)
    assert missing == []


def test_the_flag_scan_sees_flags_where_pages_give_them():
    page = ("usage.md", ("| `--made-up N` | 1 | x |\n"
                        "run `farm-bench --vs X -- beam-index index S --output O --also-made-up`\n"
                        "prose with `--inline-made-up` and `--flag` and `--s3_*`\n"))
    assert [flag for _, _, flag in _named_flags([page])] == [
        "--made-up", "--output", "--also-made-up", "--inline-made-up"]
    assert list(_named_flags([("performance.md", "the benchmark's `--embedders`")])) == []
