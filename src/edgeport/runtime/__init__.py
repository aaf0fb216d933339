"""The runtime half of edgeport: load a bundle, run it on any backend.

Never imports torch at import time; only the torch backends do.
"""
