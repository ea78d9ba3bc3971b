"""Public home of :mod:`masklab.core.rle`: ``from masklab.rle import ...``."""

from masklab.core.rle import *  # noqa: F403
from masklab.core.rle import __all__ as __all__
