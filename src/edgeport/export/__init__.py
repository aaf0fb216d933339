"""Export to TorchScript, ONNX and OpenVINO IR into a verified bundle.

This package's ``__init__`` and ``bundle`` stay torch-free: the light runtime
loads bundles through :func:`edgeport.export.bundle.load_bundle`.
"""
