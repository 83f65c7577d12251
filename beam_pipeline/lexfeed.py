"""Moved to `beam_pipeline.lexical.feed`; this name stays for one release."""

import sys
import warnings

from .lexical import feed as _moved

warnings.warn("beam_pipeline.lexfeed moved to beam_pipeline.lexical.feed", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
