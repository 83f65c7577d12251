"""Moved to `beam_pipeline.source.storage`; this name stays for one release."""

import sys
import warnings

from .source import storage as _moved

warnings.warn("beam_pipeline.storage moved to beam_pipeline.source.storage", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
