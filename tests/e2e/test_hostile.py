"""Odd and hostile trees: every entry is indexed or skipped with its reason counted, nothing
blocks, and the run completes with a sound index."""

import json
import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import MutatingEmbedder, code_file, make_tree, run_cli

from beam_pipeline import IndexSettings, run_index
from beam_pipeline.search import Index
from beam_pipeline.store.verify import verify_index


def _rows(out) -> pa.Table:
    index = Index.open(out)
    return pa.concat_tables(pq.read_table(index.shard_path(s)) for s in index.shards)


def test_a_hostile_tree_completes_with_every_entry_accounted_for(tmp_path):
    src = make_tree(tmp_path / "src", {
        "ok.py": code_file("ok", 10),
        "binary.bin": b"\x7fELF\x00\x01\x02" * 200,
        "nul_inside.py": b"x = 1\n\x00\x00\n",
        "latin1.py": "caf\xe9 = 'cr\xe8me br\xfbl\xe9e'\n".encode("cp1252"),
        "garbage.txt": b"\x01\x02\x03\xff\xfe\x05" * 300,  # control bytes, invalid UTF-8
        "utf16.py": "\ufeffdef sixteen():\n    return '\u00e9t\u00e9'\n".encode("utf-16"),
        "one_line.js": "var x = 1;" * 1_000_000,  # 10 MB, no newline
        "empty.py": "",
        "blank.py": "   \n\t\n\n",
        "with space.py": "def spaced():\n    pass\n",
        "new\nline.py": "def newline_in_name():\n    pass\n",
        "n\u00e4me_\u65e5\u672c.py": "def non_ascii_name():\n    pass\n",
        "/".join(f"d{i}" for i in range(200)) + "/deep.py": "def deepest():\n    pass\n",
    })
    os.mkfifo(src / "pipe.py")
    os.mknod(src / "device.py", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # like /dev/zero
    os.symlink("loop_b", src / "loop_a")
    os.symlink("loop_a", src / "loop_b")
    os.symlink("/etc/passwd", src / "outside.py")
    os.symlink(".", src / "self_dir")
    (src / os.fsdecode(b"bad_name_\xff.py")).write_text("x = 1\n")
    stats_path = tmp_path / "stats.json"
    done = run_cli("index", src, "--output", tmp_path / "out", "-q", "--stats-json", stats_path,
                   "--max-file-size", str(20_000_000), timeout=300)
    assert done.returncode == 0, done.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["skipped_by_reason"] == {
        "binary": 2, "undecodable": 1, "symlink": 4, "not_regular": 2, "undecodable_name": 1}
    assert stats["failed_files"] == 0 and stats["legacy_encoding_files"] == 1
    indexed = {"ok.py", "latin1.py", "utf16.py", "one_line.js", "empty.py", "blank.py",
               "with space.py", "new\nline.py", "n\u00e4me_\u65e5\u672c.py",
               "/".join(f"d{i}" for i in range(200)) + "/deep.py"}
    assert stats["files_processed"] == len(indexed)
    rows = _rows(tmp_path / "out")
    assert set(rows["path"].to_pylist()) == indexed - {"empty.py", "blank.py"}
    assert sum(p == "one_line.js" for p in rows["path"].to_pylist()) > 10_000
    assert verify_index(tmp_path / "out") == []
    hit = Index.open(tmp_path / "out").search("newline_in_name", k=1)[0]
    assert hit["path"] == "new\nline.py"


def test_files_that_vanish_or_change_during_the_run_fail_alone(tmp_path):
    src = make_tree(tmp_path / "src", {f"m{i}.py": code_file(f"m{i}", 12) for i in range(6)})
    (src / "gone.py").write_text(code_file("gone", 12))
    (src / "changing.py").write_text(code_file("before", 12))
    embedder = MutatingEmbedder(str(src / "gone.py"), str(src / "changing.py"))
    stats = run_index(src, tmp_path / "out", IndexSettings.create(embedder, batch_size=500))
    reasons = {f["path"]: f["reason"] for f in stats.failures}
    assert stats.committed and stats.files_processed == 6
    assert "FileNotFoundError" in reasons["gone.py"]
    assert reasons["changing.py"] == "file changed during indexing"
    assert verify_index(tmp_path / "out") == []
    again = run_index(src, tmp_path / "out", IndexSettings.create())
    assert again.committed and again.failed_files == 0
    assert Index.open(tmp_path / "out").search("rewritten during the run", k=1)[0]["path"] \
        == "changing.py"


@pytest.mark.slow
def test_one_hundred_thousand_tiny_files(tmp_path):
    src = tmp_path / "src"
    for d in range(100):
        folder = src / f"d{d:03d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"f{i:04d}.py").write_text(f"value_{d}_{i} = {i}\n")
    stats_path = tmp_path / "stats.json"
    done = run_cli("index", src, "--output", tmp_path / "out", "-q", "--stats-json", stats_path,
                   timeout=900)
    assert done.returncode == 0, done.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["files_processed"] == stats["chunks_created"] == 100_000
    assert stats["failed_files"] == stats["skipped_files"] == 0
    assert verify_index(tmp_path / "out") == []


def test_symlinks_are_followed_only_when_asked_and_loops_are_walked_once(tmp_path):
    outside = make_tree(tmp_path / "outside", {"shared.py": "def shared_helper():\n    pass\n",
                                               "lib/util.py": "def outside_util():\n    pass\n"})
    src = make_tree(tmp_path / "src", {"main.py": "def main():\n    pass\n"})
    os.symlink(outside / "shared.py", src / "shared_link.py")
    os.symlink(outside / "lib", src / "lib_link")
    os.symlink(src, src / "loop")  # the source itself, again
    os.symlink(tmp_path / "nowhere", src / "dangling.py")
    plain = tmp_path / "plain.json"
    done = run_cli("index", src, "--output", tmp_path / "out1", "-q", "--stats-json", plain)
    assert done.returncode == 0, done.stderr
    assert json.loads(plain.read_text())["skipped_by_reason"] == {"symlink": 4}
    assert set(_rows(tmp_path / "out1")["path"].to_pylist()) == {"main.py"}

    followed = tmp_path / "followed.json"
    done = run_cli("index", src, "--output", tmp_path / "out2", "-q", "--follow-symlinks",
                   "--stats-json", followed, timeout=120)
    assert done.returncode == 0, done.stderr
    stats = json.loads(followed.read_text())
    assert stats["skipped_by_reason"] == {"symlink_loop": 1, "broken_symlink": 1}
    assert set(_rows(tmp_path / "out2")["path"].to_pylist()) == {
        "main.py", "shared_link.py", "lib_link/util.py"}


RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


def test_nothing_raw_reaches_a_terminal_from_names_or_content(tmp_path):
    """Finding 3 of issue 37: a file's name and content with escape sequences (retitle, clear
    the screen, carriage return, the C1 CSI, a bidi override) reach the output as escapes."""
    name = "evil\x1b]0;pwned\x07\r\u202e.py"
    src = make_tree(tmp_path / "src", {
        name: "def pwned_function():\n    return '\x1b[2J\x07\rhidden \x9b1m'\n",
        "plain.py": code_file("plain", 5)})
    out = tmp_path / "out"
    indexed = run_cli("index", src, "--output", out)
    assert indexed.returncode == 0, indexed.stderr
    human = run_cli("search", out, "pwned_function", "--fts", "-k", "1")
    files = run_cli("search", out, "pwned_function", "--fts", "--files-only")
    as_json = run_cli("search", out, "pwned_function", "--fts", "--json", "-k", "1")
    for shown in (indexed.stderr, human.stdout, human.stderr, files.stdout, as_json.stdout):
        assert not [c for c in RAW_CONTROLS if c in shown], repr(shown)
    assert "evil\\x1b]0;pwned\\x07\\x0d\\u202e.py:1-2" in human.stdout
    assert "\\x1b[2J\\x07\\x0dhidden \\x9b1m" in human.stdout
    assert files.stdout.startswith("evil\\x1b]0;pwned\\x07\\x0d\\u202e.py  ")
    hit = json.loads(as_json.stdout)[0]  # JSON escapes: the real name and text, intact
    assert hit["path"] == name and "\x1b[2J\x07\rhidden \x9b1m" in hit["snippet"]


def test_an_explicit_list_cannot_leave_source_through_a_symlinked_folder(tmp_path):
    """Finding 5 of issue 37: `etc_dir/passwd`, with etc_dir a symlink to /etc, was read and
    indexed; O_NOFOLLOW guarded only the last component."""
    outside = make_tree(tmp_path / "outside", {"passwd": "root:x:0:0:SECRET_OUTSIDE:/root\n"})
    src = make_tree(tmp_path / "src", {"ok.py": code_file("ok", 3)})
    (src / "etc_dir").symlink_to(outside, target_is_directory=True)
    out = tmp_path / "out"
    stats = run_index(src, out, IndexSettings.create("hashing"),
                      files=["etc_dir/passwd", str(src / "etc_dir" / "passwd"), "ok.py"])
    assert stats.files_processed == 1 and stats.failed_files == 0
    assert stats.skipped_by_reason.get("symlink") == 1  # the two spellings are one path
    rows = pq.read_table([str(Index.open(out).shard_path(s)) for s in Index.open(out).shards])
    assert rows["path"].to_pylist() == ["ok.py"] * rows.num_rows
    assert not any("SECRET_OUTSIDE" in c for c in rows["content"].to_pylist())
    # Asked for, symlinks are followed, as for the walk.
    again = run_index(src, tmp_path / "out2", IndexSettings.create("hashing"),
                      files=["etc_dir/passwd"], follow_symlinks=True)
    assert again.files_processed == 1


AWS_KEY = "AKIA" + "Q3ZJXK7PW2LMNB4V"  # made up, in the format of an AWS access key id
PRIVATE = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7s0bXy\n-----END RSA PRIVATE KEY-----\n"


def test_secrets_stay_out_of_the_index_by_default(tmp_path):
    """Issue 38, finding 1: a .env, an id_rsa, a server.pem and a credentials file were indexed
    and `search` printed the keys. Files named as secrets, and files holding a private key
    block or a known token, are skipped as `secret`, in no form in OUT."""
    src = make_tree(tmp_path / "src", {
        ".env": f"OPENAI_API_KEY=sk-{'a' * 20}T3BlbkFJ{'b' * 20}\n",
        "deploy/id_rsa": PRIVATE,
        "certs/server.pem": PRIVATE,
        "aws/credentials": f"[default]\naws_access_key_id = {AWS_KEY}\n",
        "settings.py": f"AWS_KEY = '{AWS_KEY}'\n",
        "keys/embedded.txt": "the key we use:\n" + PRIVATE,
        "docs/aws.md": "Use a key like AKIAIOSFODNN7EXAMPLE, never a real PRIVATE KEY.\n",
        "app.py": code_file("app", 4),
    })
    out = tmp_path / "out"
    proc = run_cli("index", src, "--output", out, "--journal", "always", "--stats-json",
                   tmp_path / "stats.json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["skipped_by_reason"]["secret"] == 6 and stats["files_processed"] == 2
    assert "secret: 6" in proc.stderr  # the summary counts them
    for query in (AWS_KEY, "PRIVATE KEY", "OPENAI_API_KEY", "MIIEowIBAAKCAQEA7s0bXy"):
        found = json.loads(run_cli("search", out, query, "--fts", "--json").stdout)
        assert {hit["path"] for hit in found} <= {"docs/aws.md"}, query
    leaked = [path for path in out.rglob("*") if path.is_file()
              and any(secret in path.read_bytes() for secret in
                      (AWS_KEY.encode(), b"MIIEowIBAAKCAQEA7s0bXy", b"T3BlbkFJ"))]
    assert leaked == []
    # Asked for, they are indexed: the fingerprint changes, so nothing stays skipped.
    proc = run_cli("index", src, "--output", out, "--include-secrets", "--stats-json",
                   tmp_path / "stats.json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["files_processed"] == 8 and "secret" not in stats["skipped_by_reason"]
    found = json.loads(run_cli("search", out, AWS_KEY, "--fts", "--json").stdout)
    assert {hit["path"] for hit in found} == {"aws/credentials", "settings.py"}
