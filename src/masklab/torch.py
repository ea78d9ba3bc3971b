"""PyTorch datasets over masklab data (``pip install "masklab[torch]"``).

:class:`SegmentationDataset` (map-style) and :class:`IterableSegmentationDataset`
(streaming) read a store version, a DataView or a dataset path in any format and give
``(image, target)`` items for semantic, instance and panoptic training;
:func:`collate` batches them (variable instance counts as lists) and
:class:`SegmentationLoader` is a DataLoader that carries compact uint8 batches out of its
workers and expands them in the training process (or on the GPU). Details, item layouts
and the worker model: :mod:`masklab.training.torch`; a whole training run:
``examples/train_semantic.py``. ::

    from masklab.store import Store
    from masklab.torch import SegmentationDataset, SegmentationLoader

    ds = SegmentationDataset(Store().version("voc:v1"), task="semantic")
    criterion = torch.nn.CrossEntropyLoss(ignore_index=ds.train_ids.ignore_index)
    for images, targets in SegmentationLoader(ds, batch_size=8, num_workers=2, shuffle=True):
        loss = criterion(model(images), targets)  # images float32 (8, 3, H, W), targets int64
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        'masklab.torch needs PyTorch: pip install "masklab[torch]" (for the CPU-only build, '
        "install torch first from the CPU index: pip install torch==2.13.0 --index-url "
        "https://download.pytorch.org/whl/cpu)"
    ) from err

from masklab.training.torch import (
    Item,
    IterableSegmentationDataset,
    SegmentationDataset,
    SegmentationLoader,
    Source,
    Task,
    collate,
    expand_batch,
)

__all__ = [
    "Item",
    "IterableSegmentationDataset",
    "SegmentationDataset",
    "SegmentationLoader",
    "Source",
    "Task",
    "collate",
    "expand_batch",
]
