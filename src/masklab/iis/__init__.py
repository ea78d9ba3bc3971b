"""Interactive segmentation: datasets, region selectors, clicking robots, click encodings,
the evaluation loop, NoC metrics and weight-free baselines (reference/iis.md's protocol).

>>> from masklab.iis import GrabCutDataset, GraphCutModel, evaluate, get_robot
>>> # result = evaluate(GrabCutDataset("GrabCut"), GraphCutModel(), get_robot("ritm"))
>>> # result.summary.noc[0.9]

The torch parts (``masklab.iis.fusion``: early / intermediate fusion wrappers for
segmentation_models_pytorch-style networks; ``masklab.iis.train``: the iterative-click
training loop) import torch and are imported on their own.
"""

from masklab.iis.baselines import GraphCutModel, RandomWalkerModel
from masklab.iis.clicks import Click
from masklab.iis.datasets import (
    BerkeleyDataset,
    CocoMValDataset,
    DavisDataset,
    EvaluationDataset,
    FormatDataset,
    GrabCutDataset,
    RegionDataset,
    SegDataset,
    StoreDataset,
    open_dataset,
)
from masklab.iis.encode import disks, distance_maps, gaussians
from masklab.iis.loop import IISModel, evaluate, full_inference, load_model
from masklab.iis.metrics import IISResult, iou, noc, summarize
from masklab.iis.regions import get_selector
from masklab.iis.robots import ROBOTS, get_robot

__all__ = [
    "ROBOTS",
    "BerkeleyDataset",
    "Click",
    "CocoMValDataset",
    "DavisDataset",
    "EvaluationDataset",
    "FormatDataset",
    "GrabCutDataset",
    "GraphCutModel",
    "IISModel",
    "IISResult",
    "RandomWalkerModel",
    "RegionDataset",
    "SegDataset",
    "StoreDataset",
    "disks",
    "distance_maps",
    "evaluate",
    "full_inference",
    "gaussians",
    "get_robot",
    "get_selector",
    "iou",
    "load_model",
    "noc",
    "open_dataset",
    "summarize",
]
