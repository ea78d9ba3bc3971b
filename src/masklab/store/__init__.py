"""Versioned datasets of frames, masks and label maps (ClearML Hyper-Datasets' model).

``Store`` -> ``Dataset`` -> ``Version`` -> ``Frame`` -> ``Source`` -> masks by id, plus
``Annotation`` s (ROIs) on frames and sources and a label map per version. The catalog is SQL
(embedded SQLite by default, PostgreSQL for teams), blobs are content-addressed under an fsspec
URL (a local folder by default, S3 for teams).
"""

from masklab.store.model import Annotation, Frame, Mask, Source
from masklab.store.query import DataView, parse_where
from masklab.store.store import Dataset, Store, Version, default_home

__all__ = [
    "Annotation",
    "DataView",
    "Dataset",
    "Frame",
    "Mask",
    "Source",
    "Store",
    "Version",
    "default_home",
    "parse_where",
]
