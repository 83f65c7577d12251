"""Moved to `beam_pipeline.source.gitindex`; this name stays for one release."""

import sys
import warnings

from .source import gitindex as _moved

warnings.warn("beam_pipeline.gitindex moved to beam_pipeline.source.gitindex", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
