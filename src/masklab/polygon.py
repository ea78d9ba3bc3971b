"""Public home of :mod:`masklab.core.polygon`: ``from masklab.polygon import ...``."""

from masklab.core.polygon import *  # noqa: F403
from masklab.core.polygon import __all__ as __all__
