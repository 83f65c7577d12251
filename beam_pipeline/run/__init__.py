"""The run: what `beam-index index`, `run_index` and the face start, in the order it happens.
`settings.py` (`IndexSettings`, what an index is made with), `flags.py`, `config.py` and
`options.py` (the command line, profiles and Beam's `PipelineOptions`), `runners.py` (which
runner, and where its workers are), `pipeline.py` (`IndexFiles`: the stages' transforms put
together), `indexing.py` (`run_index`: plan, pipeline, the snapshot's indexes, commit),
`progress.py` and `terminal.py` (what the launcher shows), `stats.py` (`ProcessingStats`
from the run's counters, checked against its outputs).
"""
