"""SnapshotLexicon: the run's one object for the new snapshot's lexical index, fed by the
chunking step or following the shards, the same index either way."""

import json

import pytest
from test_feed import ids, shard_of

from beam_pipeline import lexical
from beam_pipeline.lexical import snapshot
from beam_pipeline.lexical.snapshot import BaseLexiconError, SnapshotLexicon


def build(tmp_path, name, feed, base=None, deleted=()):
    staging = tmp_path / name
    staging.mkdir()
    with SnapshotLexicon(str(staging), base, deleted, feed) as lexicon:
        link = lexicon.link
        if link is not None:  # the chunking step's part
            link.setup()
            link.send("a.py", "ha", [(0, "def alpha(): pass")])
            link.close()
        shard = shard_of(staging, {"a.py": ("ha", ["def alpha(): pass"]),
                                   "b.py": ("hb", ["def beta(): pass", "beta_two = 2"])})
        record = {"path": shard[1]}
        entry = lexicon.finish([record], own=[record], carried=[],
                               committed_files={"a.py": "ha", "b.py": "hb"}, pipeline_s=1.0)
        fed = lexicon.fed
    return str(staging), entry, fed


@pytest.mark.parametrize("feed", [True, False])
def test_both_ways_hold_exactly_the_committed_rows(tmp_path, feed):
    folder, entry, fed = build(tmp_path, "s", feed)
    assert fed is feed
    index = lexical.LexicalIndex.open(folder, entry)
    assert sorted(index.all_ids()) == sorted(ids("a.py", "ha", 1) | ids("b.py", "hb", 2))


def test_a_feed_that_cannot_start_hands_over_to_the_shards(tmp_path, monkeypatch, caplog):
    def no_helper(*args):
        raise PermissionError("no interpreter for this user")

    monkeypatch.setattr(snapshot, "LexicalFeed", no_helper)
    folder, entry, fed = build(tmp_path, "s", feed=True)
    assert not fed and "built from the shards" in caplog.text
    assert len(lexical.LexicalIndex.open(folder, entry).all_ids()) == 3


def test_a_base_that_is_not_what_it_recorded_is_refused(tmp_path):
    folder, entry, _ = build(tmp_path, "base", feed=False)
    for name in entry["files"]:  # every file of the base's index, altered
        path = tmp_path / "base" / lexical.LEXICAL_DIR / name["name"]
        path.write_bytes(path.read_bytes() + b"!")
    staging = tmp_path / "next"
    staging.mkdir()
    with pytest.raises(BaseLexiconError):
        SnapshotLexicon(str(staging), (folder, entry), {"b.py"}, feed=False)


def test_a_chain_of_re_indexes_carries_only_the_files_its_index_uses(tmp_path):
    # A watch commits one file at a time: each snapshot's index starts from the last one's.
    # Segments merged away and superseded deletes must not travel from snapshot to snapshot.
    folder, entry, _ = build(tmp_path, "s0", feed=False)
    for step in range(1, 13):
        staging = tmp_path / f"s{step}"
        staging.mkdir()
        with SnapshotLexicon(str(staging), (folder, entry), {"b.py"}, feed=False) as lexicon:
            shard = shard_of(staging, {"b.py": (f"h{step}", [f"def beta_{step}(): pass"])})
            record = {"path": shard[1]}
            entry = lexicon.finish([record], own=[record], carried=[], committed_files={},
                                   pipeline_s=1.0)
        folder = str(staging)
        meta = json.loads((staging / lexical.LEXICAL_DIR / "meta.json").read_text())
        live = {segment["segment_id"].replace("-", ""): segment.get("deletes")
                for segment in meta["segments"]}
        for item in entry["files"]:
            name = item["name"]
            if name == "meta.json":
                continue
            segment, *_, suffix = name.split(".")
            assert segment in live, f"step {step}: {name} belongs to no live segment"
            if suffix == "del":  # only the segment's current deletes
                assert name == f"{segment}.{live[segment]['opstamp']}.del", name
        index = lexical.LexicalIndex.open(folder, entry)
        assert sorted(index.all_ids()) == sorted(ids("a.py", "ha", 1) | ids("b.py", f"h{step}", 1))
