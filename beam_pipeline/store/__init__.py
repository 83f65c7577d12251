"""The store stage: a file's vectors become rows, rows become shards, shards a snapshot.
`rows.py` (a file's Arrow rows; shards of whole files), `spill.py` (vectors waiting in local
files on their way to the shards, in the local modes), `assemble.py` (`AssembleFiles`: a
file's record, chunks and vectors grouped into its rows, all or nothing), `write.py`
(`WriteShards`, `WriteFilesTable`), `commit.py` (the one step that makes a snapshot live),
`lock.py` (one run at a time), `reindex.py` (the plan against the live snapshot, carrying rows
forward, pruning) and `verify.py` (a snapshot checked against its manifest).
"""
