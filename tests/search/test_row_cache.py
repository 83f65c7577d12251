"""A resident reader's cache of decoded row groups answers exactly what reading them does."""

from conftest import code_file, make_tree

from beam_pipeline import run_index
from beam_pipeline.search import Index
from beam_pipeline.search.reader import RowGroupCache


def test_cached_row_groups_give_the_same_hits_and_text(tmp_path):
    src = make_tree(tmp_path / "src", {f"pkg/m{i}.py": code_file(f"m{i}", 40) for i in range(6)})
    run_index(src, tmp_path / "out", quiet=True)
    plain = Index.open(tmp_path / "out")
    for max_bytes in (1, 64 << 20):  # one group kept at a time, then all of them
        cached = Index.open(tmp_path / "out")
        cached.row_cache = RowGroupCache(max_bytes)
        for _ in range(2):  # the second pass reads from the cache
            for query, mode in (("m3_7 value", "hybrid"), ("return value", "fts"),
                                ("multiply a value", "semantic")):
                assert cached.search(query, k=8, mode=mode) == plain.search(query, k=8,
                                                                            mode=mode)
            assert cached.file_text("pkg/m2.py") == plain.file_text("pkg/m2.py")
        assert cached.row_cache._groups  # it was used
        if max_bytes == 1:
            assert len(cached.row_cache._groups) == 1
