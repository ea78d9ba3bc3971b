"""Shared lookups of the viewer's routes: the store, ids from the path, versions, frames.

Path segments under ``/api`` reach the routes still percent-encoded (see
:class:`masklab.viewer.app.RawApiPath`), so a frame id holding ``/`` (``train/0001``) is one
segment; :func:`segment` decodes each exactly once. A segment that cannot be an id (bad
percent-encoding or UTF-8, control characters, over :data:`MAX_ID` characters) answers 404
like an unknown id, before any store lookup. Ids are only ever compared with the catalog's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import unquote_to_bytes

from fastapi import Depends, HTTPException, Path, Request

from masklab.errors import NotFoundError
from masklab.store import Store, Version
from masklab.store.model import Frame

__all__ = [
    "MAX_ID",
    "FrameDep",
    "StateDep",
    "StoreDep",
    "ThumbnailCache",
    "VersionDep",
    "ViewerState",
    "WritableDep",
    "get_version",
    "segment",
]

MAX_ID = 1024  # characters of a decoded id; longer ones are no id of ours


class ThumbnailCache:
    """A small LRU of encoded thumbnails (bytes, content type), safe across threads."""

    def __init__(self, max_items: int = 256) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, int], tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> tuple[bytes, str] | None:
        """The cached entry (now the most recent), or None."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple[str, int], item: tuple[bytes, str]) -> None:
        """Keep an entry, dropping the least recently used beyond ``max_items``."""
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)


@dataclass
class ViewerState:
    """What one app serves: its store, whether it may write, its thumbnail cache."""

    store: Store
    writable: bool = False
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)


def get_state(request: Request) -> ViewerState:
    """The app's :class:`ViewerState` (set by ``create_app``)."""
    state: ViewerState = request.app.state.viewer
    return state


StateDep = Annotated[ViewerState, Depends(get_state)]


def get_store(state: StateDep) -> Store:
    """The app's store."""
    return state.store


StoreDep = Annotated[Store, Depends(get_store)]


def segment(raw: str, what: str) -> str:
    """Decode one percent-encoded path segment into an id; 404 when it cannot be one.

    >>> segment("train%2F0001", "frame")
    'train/0001'
    """
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(404, f"no {what} with that id (not UTF-8)") from None
    if not text or len(text) > MAX_ID or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise HTTPException(404, f"no {what} with that id")
    return text


def get_version(
    store: StoreDep,
    dataset: Annotated[str, Path(description="Dataset name, percent-encoded.")],
    version: Annotated[str, Path(description="Version name, percent-encoded.")],
) -> Version:
    """The version ``dataset:version`` of the store; 404 when either is unknown."""
    return find_version(store, segment(dataset, "dataset"), segment(version, "version"))


def find_version(store: Store, dataset: str, version: str) -> Version:
    """The version of decoded names; 404 (with the store's message) when unknown."""
    try:
        return store.dataset(dataset).version(version)
    except NotFoundError as err:
        raise HTTPException(404, str(err.args[0]) if err.args else "not found") from None


VersionDep = Annotated[Version, Depends(get_version)]


def get_frame(
    version: VersionDep,
    frame_id: Annotated[str, Path(description="Frame id, percent-encoded.")],
) -> Frame:
    """The committed frame of the version; 404 when unknown."""
    try:
        return version.frame(segment(frame_id, "frame"))
    except NotFoundError as err:
        raise HTTPException(404, str(err.args[0]) if err.args else "not found") from None


FrameDep = Annotated[Frame, Depends(get_frame)]


def require_writable(state: StateDep) -> ViewerState:
    """The state of a writable app; 403 unless the server was started with --writable."""
    if not state.writable:
        raise HTTPException(
            403, "this viewer is read-only; restart it with `masklab view --writable` to edit"
        )
    return state


WritableDep = Annotated[ViewerState, Depends(require_writable)]
