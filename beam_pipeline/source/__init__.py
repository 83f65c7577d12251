"""The source stage: what the index reads and where it writes. `discover.py` walks SOURCE (a
folder, or a store's listing) or takes an explicit list, `gitindex.py` asks git's index which
files are unchanged, `text.py` reads one file and decodes its text (refusing binaries and
secrets, `secretscan.py`), `language.py` names a file's language, and `storage.py` reaches
SOURCE's and OUT's files on any scheme through Beam's FileSystems. Nothing here imports Beam
but `storage.py`, and it only for a URL.
"""
