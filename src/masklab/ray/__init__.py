"""masklab on Ray Data: the same conversions on a cluster, and samples as Arrow blocks.

For users who already live in Ray (``pip install "masklab[ray]"``):

* :func:`read` opens any format masklab reads as a ``ray.data.Dataset`` of sample rows
  (one row an image; masks as COCO compressed RLE strings with their sizes, see
  :mod:`masklab.ray.arrow` for the columns);
* :func:`write` writes such a dataset in any format masklab writes;
* :mod:`masklab.ray.batches` holds functions for your own ``map_batches``: decode,
  encode, rasterise polygons, class maps, IoU, per-sample metrics;
* :func:`masklab.ray.engine.convert` is ``formats.convert`` on Ray Data (the CLI's
  ``--engine ray``): same output, same :class:`~masklab.formats.ConversionReport`.

Ray is imported when first used; without it these raise ImportError naming the extra.

Example (not run here: it starts Ray)::

    import ray, masklab.ray
    from masklab.ray import batches
    ds = masklab.ray.read("coco/annotations/instances_val2017.json")
    areas = ds.map_batches(batches.rasterise, batch_format="pyarrow")
    masklab.ray.write(ds, "out/voc", "voc")
"""

from __future__ import annotations

from masklab.ray.engine import convert
from masklab.ray.io import labels_of, read, write

__all__ = ["convert", "labels_of", "read", "write"]
