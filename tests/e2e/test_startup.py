"""Commands that run no pipeline never import Beam: a search, a verify, --help, --version and a
re-index with nothing to do cost what reading the index and planning cost, not Beam's
start-up."""

import subprocess
import sys

import pytest
from conftest import code_file, make_tree

from beam_pipeline import run_index

CHECK = """
import sys
from beam_pipeline.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("BEAM" if "apache_beam" in sys.modules else "NO BEAM", code, file=sys.stderr)
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("startup")
    src = make_tree(root / "src", {"net/server.py": "def serve_forever(port):\n    pass\n",
                                   "util.py": code_file("util", 20)})
    run_index(src, root / "index")
    return root / "index"


@pytest.mark.parametrize("args", [
    ["search", "{index}", "serve forever port", "-k", "1"],
    ["search", "{index}", "serve forever port", "--json"],
    ["verify", "{index}"],
    ["verify", "{index}", "--source", "{index}/../src"],
    ["--help"],
    ["--version"],
    ["index", "--help"],
    ["index", "{index}/../src", "--output", "{index}", "-q"],  # up to date
    ["index", "{index}/../src", "--output", "{index}", "-q", "--checksum"],
])
def test_commands_that_run_no_pipeline_never_import_beam(index, args):
    argv = [a.format(index=index) for a in args]
    done = subprocess.run([sys.executable, "-c", CHECK, *argv], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.stderr.strip().splitlines()[-1] == "NO BEAM 0", done.stderr[-2000:]


SEARCH_SKIPS = ("apache_beam", "pandas", "yaml", "pathspec", "tree_sitter")


def test_a_search_imports_only_what_it_uses(index):
    """A search reads Parquet, numpy and the lexical index; the profile parser, the walk's
    globs, the chunkers' grammars and pandas (which pyarrow pulls in on some conversions)
    cost it tens of ms each."""
    check = CHECK.replace('"BEAM" if "apache_beam" in sys.modules else "NO BEAM"',
                          f"[m for m in {SEARCH_SKIPS!r} if m in sys.modules]")
    done = subprocess.run([sys.executable, "-c", check, "search", str(index), "serve forever"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.stderr.strip().splitlines()[-1] == "[] 0", done.stderr[-2000:]


def test_the_version_is_the_packages():
    from beam_pipeline import __version__

    done = subprocess.run([sys.executable, "-m", "beam_pipeline", "--version"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == f"beam-index {__version__}"


def test_a_run_with_work_still_builds_its_pipeline_after_a_plan_without_beam(tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": code_file("a", 10)})
    done = subprocess.run([sys.executable, "-c", CHECK, "index", str(src), "--output",
                           str(tmp_path / "out"), "-q"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.stderr.strip().splitlines()[-1] == "BEAM 0", done.stderr[-2000:]
    assert "Committed snapshot" in done.stderr


def test_beam_index_leaves_beams_objects_to_the_os_at_exit():
    """The interpreter's last collections would walk every object Beam's import made (0.13 s
    of each such process's exit); `beam-index` freezes them in an exit handler registered at
    its entry (the program's decision: importing the library registers nothing,
    tests/run/test_import_side_effects.py). The handler below is registered first, so it runs
    after that one; the command exits through sys.exit (a usage error)."""
    check = ("import atexit, gc, sys\n"
             "atexit.register(lambda: print('frozen', gc.get_freeze_count(), file=sys.stderr))\n"
             "import apache_beam\n"
             "print('before exit', gc.get_freeze_count(), file=sys.stderr)\n"
             "from beam_pipeline.cli import entry\n"
             "sys.argv = ['beam-index', 'index', 'nowhere', '--output', 'out', '--keep', '0']\n"
             "entry()\n")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2 and "--keep must be at least 1" in done.stderr, done.stderr
    counts = dict(line.rsplit(" ", 1) for line in done.stderr.splitlines()
                  if line.startswith(("frozen", "before exit")))
    assert counts["before exit"] == "0"  # nothing is frozen while the process runs
    assert int(counts["frozen"]) > 10_000, done.stderr[-2000:]
