"""The indexer's own flags, defined once and without Beam: the CLI parses them before anything
imports apache_beam (`beam-index search`, `--help`), and `options.IndexOptions` hands the same
flags to Beam's PipelineOptions.

Example::

    parser = argparse.ArgumentParser()
    add_index_flags(parser.add_argument_group("indexing"))
"""

from __future__ import annotations

import argparse

from ..chunking.fixed import DEFAULT_CHUNK_SIZE
from ..embedders import DEFAULT_EMBEDDER
from ..source.discover import DEFAULT_MAX_FILE_SIZE
from ..source.text import AUTO, CHUNKERS

DEFAULT_BATCH_SIZE = 64
# A run of fewer files than this starts no helper process (embedding, lexical feed): starting
# one costs more than it saves there (watch's one-file commits, a small re-index).
SMALL_RUN_FILES = 64


def add_endpoint_flags(group: argparse._ActionsContainer) -> None:
    """Where a remote embedder's requests go, under which model and key: always the user's
    word, for a search as for a run (an index's copy is only compared: embedders/base.py)."""
    group.add_argument("--embedding-url", "--embedding_url", dest="embedding_url",
                       help="openai: base URL of an OpenAI-compatible endpoint "
                       "(OpenAI, Ollama, vLLM, text-embeddings-inference, LM Studio)")
    group.add_argument("--embedding-model", "--embedding_model", dest="embedding_model",
                       help="openai: the model name the endpoint expects; static: one of the "
                       "tables shipped in beam_pipeline/data/static (default: potion-base-8m)")
    group.add_argument("--api-key-env", "--api_key_env", dest="api_key_env",
                       help="openai: environment variable holding the API key "
                       "(default: OPENAI_API_KEY; never logged or stored)")


def add_index_flags(group: argparse._ActionsContainer) -> None:
    """What shapes an index: the embedder, its service, chunking, batching, limits."""
    group.add_argument("--embedder", default=DEFAULT_EMBEDDER,
                       help=f"embedder name (default: {DEFAULT_EMBEDDER}, built in, no download; "
                       "hashing: built in, feature hashing of code tokens; minilm, openai, voyage)")
    add_endpoint_flags(group)
    group.add_argument("--embedding-dim", "--embedding_dim", dest="embedding_dim", type=int,
                       default=None, help="vector dimension (default: the embedder's own: "
                       "static 256, hashing 384, minilm 384, voyage 1024; openai: learned from "
                       "the live snapshot or one probe request)")
    group.add_argument("--include-secrets", "--include_secrets", dest="include_secrets",
                       action="store_true",
                       help="also index files named or holding secrets (.env, *.pem, id_rsa*, "
                       "credentials…; private key blocks, known token formats), which are "
                       "skipped by default and counted as 'secret'")
    group.add_argument("--chunk-size", "--chunk_size", dest="chunk_size", type=int,
                       default=None,
                       help=f"characters per chunk (default: {DEFAULT_CHUNK_SIZE}; "
                       "4096 for voyage-code models)")
    group.add_argument("--chunk-overlap", "--chunk_overlap", dest="chunk_overlap", type=int,
                       default=None, help="characters shared by neighbouring chunks "
                       "(default: 15%% of the chunk size)")
    group.add_argument("--chunker", choices=(AUTO, *CHUNKERS), default=AUTO,
                       help="syntax: code cut at its functions and classes with tree-sitter, "
                       "other files by size; fixed: chunks of a fixed size (default: auto, "
                       "the live snapshot's chunker, syntax for a new index or --full)")
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
                       help="GIL-bound embedders (static, hashing): helper processes that embed "
                       "while the pipeline chunks and writes; 0 embeds in the worker "
                       "(default: one per core on the local in-memory runner, else 0)")
    group.add_argument("--max-file-size", "--max_file_size", dest="max_file_size", type=int,
                       default=DEFAULT_MAX_FILE_SIZE,
                       help="skip files larger than this many bytes (default: 1 MiB)")
