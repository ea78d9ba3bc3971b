"""masklab: the data layer for image segmentation.

``masklab.rle`` is the canonical mask (COCO RLE, byte-compatible with pycocotools) and
its algebra; ``masklab.polygon`` rasterises polygons exactly as COCO does and traces
masks back into polygons without loss.
"""

from masklab import polygon, rle
from masklab.core.polygon import Part, Polygons
from masklab.core.rle import RLE
from masklab.errors import (
    AmbiguousFormatError,
    BlobIntegrityError,
    FormatError,
    LabelMapError,
    MaskFormatError,
    MaskLabError,
    NotFoundError,
    PublishedVersionError,
    StoreError,
    UnknownFormatError,
)

__version__ = "0.1.0"

__all__ = [
    "RLE",
    "AmbiguousFormatError",
    "BlobIntegrityError",
    "FormatError",
    "LabelMapError",
    "MaskFormatError",
    "MaskLabError",
    "NotFoundError",
    "Part",
    "Polygons",
    "PublishedVersionError",
    "StoreError",
    "UnknownFormatError",
    "__version__",
    "polygon",
    "rle",
]
