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

from .chunking import DEFAULT_CHUNK_SIZE
from .discover import DEFAULT_MAX_FILE_SIZE
from .runners import place

DEFAULT_BATCH_SIZE = 64
DEFAULT_DIM = 384


class IndexOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        group = parser.add_argument_group("indexing")
        group.add_argument("--embedder", default="hashing",
                           help="embedder name (default: hashing, built in, no download)")
        group.add_argument("--embedding-url", "--embedding_url", dest="embedding_url",
                           help="openai: base URL of an OpenAI-compatible endpoint "
                           "(OpenAI, Ollama, vLLM, text-embeddings-inference, LM Studio)")
        group.add_argument("--embedding-model", "--embedding_model", dest="embedding_model",
                           help="openai: the model name the endpoint expects")
        group.add_argument("--api-key-env", "--api_key_env", dest="api_key_env",
                           help="openai: environment variable holding the API key "
                           "(default: OPENAI_API_KEY; never logged or stored)")
        group.add_argument("--embedding-dim", "--embedding_dim", dest="embedding_dim", type=int,
                           default=None, help="vector dimension (default: the embedder's own: "
                           f"hashing {DEFAULT_DIM}, minilm 384, openai 1536, voyage 1024)")
        group.add_argument("--chunk-size", "--chunk_size", dest="chunk_size", type=int,
                           default=None,
                           help=f"characters per chunk (default: {DEFAULT_CHUNK_SIZE}; "
                           "4096 for voyage-code models)")
        group.add_argument("--chunk-overlap", "--chunk_overlap", dest="chunk_overlap", type=int,
                           default=None, help="characters shared by neighbouring chunks "
                           "(default: 15%% of the chunk size)")
        group.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int,
                           default=DEFAULT_BATCH_SIZE,
                           help="chunks per embedder call; batches span files "
                           "(default: %(default)s)")
        group.add_argument("--embed-concurrency", "--embed_concurrency", dest="embed_concurrency",
                           type=int, default=None,
                           help="remote providers: requests in flight (default 1); local "
                           "models: compute threads, capped at the cores (default: all cores)")
        group.add_argument("--embed-processes", "--embed_processes", dest="embed_processes",
                           type=int, default=None,
                           help="GIL-bound embedders (hashing): helper processes that embed "
                           "while the pipeline chunks and writes; 0 embeds in the worker "
                           "(default: one per core on the local in-memory runner, else 0)")
        group.add_argument("--max-file-size", "--max_file_size", dest="max_file_size", type=int,
                           default=DEFAULT_MAX_FILE_SIZE,
                           help="skip files larger than this many bytes (default: 1 MiB)")


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


def embed_processes(options: PipelineOptions, asked: int | None, gil_bound: bool) -> int:
    """Helper processes for a GIL-bound embedder: `asked` when given, else one per core on the
    local runner's single-process modes (its one pipeline thread mostly waits for the embedder:
    on the standard library with 2 cores, 1 helper saved 4 %, 2 helpers 15 %). Where Beam
    already runs a worker process per core (multi_processing, distributed runners) helpers
    would only compete with them."""
    if asked is not None:
        return asked
    if not gil_bound or not place(options).in_process:
        return 0
    return len(os.sched_getaffinity(0))
