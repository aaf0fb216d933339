"""The export half: a PyTorch model plus the user's data -> a verified bundle.

:func:`edgeport.export.api.export` runs the stages; each format's work lives in
:mod:`edgeport.formats`, and the bundle contract in :mod:`edgeport.bundle`.
"""
