"""Segmentation metrics as papers compute them: semantic, COCO mask AP, panoptic quality.

* ``semantic``: :class:`ConfusionMatrix` -- IoU / mIoU over the whole dataset (per-image
  means on request), Dice, pixel and class accuracy, ignore index honoured;
* ``boundary``: :class:`BoundaryF` -- per-class boundary F-score within a tolerance;
* ``coco``: :func:`coco.evaluate` -- COCO mask / box AP and AR by the COCOeval protocol,
  equal to pycocotools' numbers;
* ``panoptic``: :class:`PanopticQuality` -- PQ / SQ / RQ as panopticapi defines them.

NumPy only; ``masklab eval`` runs them over two datasets.
"""

from masklab.metrics import coco
from masklab.metrics.boundary import BoundaryF, boundary_f
from masklab.metrics.panoptic import PanopticQuality, PanopticResult
from masklab.metrics.semantic import ConfusionMatrix

__all__ = [
    "BoundaryF",
    "ConfusionMatrix",
    "PanopticQuality",
    "PanopticResult",
    "boundary_f",
    "coco",
]
