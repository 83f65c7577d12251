"""Moved to `beam_pipeline.search.ann`; this name stays for one release."""

import sys
import warnings

from .search import ann as _moved

warnings.warn("beam_pipeline.ann moved to beam_pipeline.search.ann", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
