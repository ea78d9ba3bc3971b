"""The ``masklab`` command line: ``app`` (Typer) and ``main`` (the console script).

``app.py`` holds the shared machinery and the format commands (demo, info, convert);
``store.py`` the dataset store's (import, export, datasets, versions, diff, frames, publish);
``eval.py`` ``masklab eval``.
"""

from masklab.cli import eval as _eval  # noqa: F401  (registers masklab eval)
from masklab.cli import iis as _iis  # noqa: F401  (registers masklab iis)
from masklab.cli import store as _store  # noqa: F401  (registers the store commands)
from masklab.cli import view as _view  # noqa: F401  (registers masklab view)
from masklab.cli.app import app, main

__all__ = ["app", "main"]
