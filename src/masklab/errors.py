"""The exceptions masklab raises.

Everything masklab raises on bad input derives from :class:`MaskLabError`, so
``except masklab.MaskLabError`` catches all of it; each class also subclasses the
built-in it means (a malformed mask is a ``ValueError``)::

    MaskLabError                      root
    ├─ MaskFormatError(ValueError)    malformed mask data: counts, compressed string, polygon, size
    ├─ FormatError(ValueError)        a file breaks its format; .path .record .field
    │  ├─ UnknownFormatError          detect() matched nothing
    │  └─ AmbiguousFormatError        several formats matched
    ├─ LabelMapError(ValueError)      unknown colour or class, conflicting label maps
    └─ StoreError
       ├─ NotFoundError(KeyError)     dataset, version or frame id
       ├─ PublishedVersionError       a write to a published version
       └─ BlobIntegrityError          a blob whose bytes no longer match its hash

Messages say what is wrong, where, what was found against what was expected, and the
fix when it is known. Programmer misuse (an argument of the wrong type) is a plain
``TypeError``, not one of these.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousFormatError",
    "BlobIntegrityError",
    "FormatError",
    "LabelMapError",
    "MaskFormatError",
    "MaskLabError",
    "NotFoundError",
    "PublishedVersionError",
    "StoreError",
    "UnknownFormatError",
]


class MaskLabError(Exception):
    """Root of every error masklab raises on bad input or state."""


class MaskFormatError(MaskLabError, ValueError):
    """Mask data is malformed: RLE counts, a compressed string, a polygon or a size."""


class FormatError(MaskLabError, ValueError):
    """A file breaks its format; names the file, the record and the field when known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        record: object = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.record = record
        self.field = field


class UnknownFormatError(FormatError):
    """No format's detector matched the given path."""


class AmbiguousFormatError(FormatError):
    """Several formats' detectors matched the given path equally well."""


class LabelMapError(MaskLabError, ValueError):
    """An unknown colour or class, or two label maps that disagree."""


class StoreError(MaskLabError):
    """A dataset store operation failed."""


class NotFoundError(StoreError, KeyError):
    """A dataset, version or frame id does not exist."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class PublishedVersionError(StoreError):
    """A write was attempted on a published (immutable) version."""


class BlobIntegrityError(StoreError):
    """A stored blob's bytes no longer match the sha256 it is stored under."""
