"""TensorFlow input pipelines over masklab data (``pip install "masklab[tf]"``).

:func:`dataset` reads TFRecord files of the TensorFlow Object Detection API (as masklab's
``tfrecord`` format writes them, or ``create_coco_tf_record.py``) into a ``tf.data``
pipeline of ``(image, target)``: instance targets (masks, boxes, labels) or a painted
class map, the same targets :mod:`masklab.training.targets` builds. Details:
:mod:`masklab.training.tf`. TensorFlow itself is imported on the first call. ::

    import masklab.tf

    ds = masklab.tf.dataset("data/train.tfrecord", task="semantic")
    ds = ds.map(lambda image, target: (tf.image.convert_image_dtype(image, tf.float32), target))
    model.fit(ds.batch(8), epochs=10)
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("tensorflow") is None:  # pragma: no cover - environment
    raise ImportError(
        'masklab.tf needs TensorFlow: pip install "masklab[tf]" (or pip install tensorflow-cpu)'
    )

from masklab.training.tf import MaskType, TfTask, dataset

__all__ = ["MaskType", "TfTask", "dataset"]
