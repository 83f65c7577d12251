"""The index's format, which every stage writes or reads: `schema.py` (the folders and files of
OUT, the row and files-table schemas, deterministic row ids, how a Parquet file of the layout
is written), `records.py` (one source file's record on its way through the pipeline, a row of
files.parquet at the end) and `columns.py` (Arrow columns as numpy, and back). No Beam.
"""
