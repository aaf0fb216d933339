"""Task models for every task edgeport judges, with the synthetic data sets that give them meaning.

Importing this package registers the models with :mod:`edgeport.sources.models` (the registry's
``_builtins`` does it on first use).  Real architectures (random weights, for speed and parity):
:mod:`.vision` (SSDlite320 detector, LR-ASPP segmenter, MobileNetV3 embedder), :mod:`.text`
(a BERT-style token tagger with a dynamic sequence length), :mod:`.audio` (a DS-CNN keyword
spotter).  Small trainable ones, whose metrics are real numbers: :mod:`.tiny`, trained by
:mod:`.train` on the labelled sets that :mod:`.shapes`, :mod:`.tones` and :mod:`.tokens` generate.
"""

from __future__ import annotations

from . import audio, text, tiny, vision  # noqa: F401  (register their models)
