"""IndexOptions: the indexer's own pipeline options, and how many embedding helpers a run gets.

Every other flag is a Beam option and passes through untouched (`--runner`,
`--direct_running_mode`, `--direct_num_workers`, `--flink_master`, `--setup_file`, …).

Example::

    options = PipelineOptions(["--chunk_size=800", "--direct_running_mode=multi_processing"])
    index_options = options.view_as(IndexOptions)
"""

from __future__ import annotations

import os

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from .flags import SMALL_RUN_FILES, add_index_flags
from .runners import place


class IndexOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        add_index_flags(parser.add_argument_group("indexing"))


def unknown_flags(flags: list[str]) -> list[str]:
    """Flags that no PipelineOptions class (Beam's or ours) understands."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    seen = set()
    for cls in PipelineOptions.__subclasses__():
        if str(cls) not in seen:  # the same class may be registered twice
            seen.add(str(cls))
            cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(flags)
    return [flag for flag in unknown if flag.startswith("-")]


def embed_processes(options: PipelineOptions, asked: int | None, gil_bound: bool,
                    files: int | None = None) -> int:
    """Helper processes for a GIL-bound embedder: `asked` when given, else one per core on the
    local runner's single-process modes (its one pipeline thread mostly waits for the embedder:
    on the standard library with 2 cores, 1 helper saved 4 %, 2 helpers 15 %), unless the run
    has fewer than SMALL_RUN_FILES `files`. Where Beam already runs a worker process per core
    (multi_processing, distributed runners) helpers would only compete with them."""
    if asked is not None:
        return asked
    if not gil_bound or not place(options).in_process:
        return 0
    if files is not None and files < SMALL_RUN_FILES:
        return 0
    return len(os.sched_getaffinity(0))
