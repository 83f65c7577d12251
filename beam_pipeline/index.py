"""Moved to `beam_pipeline.search.reader`; this name stays for one release."""

import sys
import warnings

from .search import reader as _moved

warnings.warn("beam_pipeline.index moved to beam_pipeline.search.reader", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
