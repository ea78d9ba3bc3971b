"""Training-ready targets, joint transforms and the PyTorch / TensorFlow adapters.

"What do I give the loss as the label?" -- one call per task (see docs/training.md):

* ``class_map`` -> int64 (H, W) of contiguous train ids, ignore 255: ``CrossEntropyLoss``;
* ``binary_maps`` -> uint8 (C, H, W), multi-label: ``BCEWithLogitsLoss``;
* ``instance_targets`` -> the dict torchvision's Mask R-CNN takes;
* ``panoptic_targets`` -> semantic + instance maps and per-segment masks.

NumPy only here; ``masklab.torch`` and ``masklab.tf`` wrap them for the frameworks.
"""

from masklab.training.targets import (
    IGNORE_RLE,
    TrainIds,
    binary_maps,
    class_map,
    ignore_mask,
    instance_targets,
    load_image,
    panoptic_targets,
)
from masklab.training.transforms import (
    Albumentations,
    CenterCrop,
    Compose,
    Crop,
    HorizontalFlip,
    PadIfNeeded,
    RandomCrop,
    Resize,
    Transform,
    VerticalFlip,
)

__all__ = [
    "IGNORE_RLE",
    "Albumentations",
    "CenterCrop",
    "Compose",
    "Crop",
    "HorizontalFlip",
    "PadIfNeeded",
    "RandomCrop",
    "Resize",
    "TrainIds",
    "Transform",
    "VerticalFlip",
    "binary_maps",
    "class_map",
    "ignore_mask",
    "instance_targets",
    "load_image",
    "panoptic_targets",
]
