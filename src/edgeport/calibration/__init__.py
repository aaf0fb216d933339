"""Calibration set and int8 quantization for every format."""

from __future__ import annotations

import logging


def import_nncf():
    """``import nncf`` without torch's "No CUDA runtime is found" log line.

    nncf imports ``torch.utils.cpp_extension``, which logs that warning on every
    CPU-only machine; it says nothing about edgeport's int8 work.
    """
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import nncf

    return nncf
