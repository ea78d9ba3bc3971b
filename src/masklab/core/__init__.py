"""The mask core: canonical COCO RLE and its algebra, COCO-exact polygons. No I/O."""

from masklab.core import polygon, rle
from masklab.core.polygon import Part, Polygons
from masklab.core.rle import RLE

__all__ = ["RLE", "Part", "Polygons", "polygon", "rle"]
