"""The web viewer: a FastAPI app over a store (datasets, versions, frames, masks, diffs).

:func:`create_app` builds the app for one :class:`~masklab.store.Store`; ``masklab view``
serves it with uvicorn on 127.0.0.1. The JSON API is under ``/api``; the page (plain static
files, no build step) is ``/`` and ``/static/...``. Masks travel as compressed COCO RLE
strings and are decoded in the page.

Requests name datasets, versions, frames and sources by id only: nothing in a request is
ever used as a file path. Unknown ids answer 404, writes answer 403 unless the app was
built with ``writable=True``, request bodies over 64 KiB answer 413.

Needs the ``viewer`` extra: ``pip install "masklab[viewer]"``.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        'the masklab viewer needs FastAPI and uvicorn: pip install "masklab[viewer]"'
    ) from err

from masklab.viewer.app import create_app

__all__ = ["create_app"]
