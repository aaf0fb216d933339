"""Data sources: one protocol for MNIST, image folders, npz files, COCO detection, segmentation
folders, WAV folders and synthetic inputs.

This module is the stable import point; each source kind lives in its own module:
:mod:`.base` (the protocol, splits), :mod:`.open` (spec strings), :mod:`.plan` (the export's plan), :mod:`.mnist_source`,
:mod:`.imagefolder`, :mod:`.npz`, :mod:`.coco`, :mod:`.segfolder`, :mod:`.audio`, :mod:`.synthetic`.
"""

from __future__ import annotations

from ..specs import BATCH
from .audio import WavFolderSource
from .base import (
    MAX_LISTED,
    RANDOM,
    REAL_LABELLED,
    REAL_UNLABELLED,
    DataPlan,
    DataSource,
    balanced_positions,
    first_batch,
)
from .coco import CocoSource
from .imagefolder import ImageFolderSource
from .mnist_source import ArraySource, MnistSource
from .npz import NpzSource
from .open import KINDS, open_source
from .plan import plan_data
from .segfolder import SegFolderSource
from .synthetic import SyntheticSource

__all__ = [
    "ArraySource",
    "BATCH",
    "CocoSource",
    "DataPlan",
    "DataSource",
    "ImageFolderSource",
    "KINDS",
    "MAX_LISTED",
    "MnistSource",
    "NpzSource",
    "RANDOM",
    "REAL_LABELLED",
    "REAL_UNLABELLED",
    "SegFolderSource",
    "SyntheticSource",
    "WavFolderSource",
    "balanced_positions",
    "first_batch",
    "open_source",
    "plan_data",
]
