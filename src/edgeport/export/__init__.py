"""The export half: a PyTorch model plus the user's data -> a verified bundle.

:func:`edgeport.export.public.export` is the Python API (``edgeport.export(model, out, ...)``);
:func:`edgeport.export.api.export` runs the stages; each format's work lives in
:mod:`edgeport.formats`, and the bundle contract in :mod:`edgeport.bundle`.

``edgeport.export`` names both this package and the function: once any of its modules is imported,
Python sets the package as the attribute, so the package itself is callable and calls the function.
"""

from __future__ import annotations

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .public import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
