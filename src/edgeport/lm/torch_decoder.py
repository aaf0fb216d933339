"""PyTorch eager as a decoder runner (backend ``torch``): the reference, stepping a transformers
``DynamicCache`` exactly as the exported graphs do, so ``generate``, ``selfcheck``-style checks and
``bench`` can put PyTorch in the same table.  Needs torch and transformers.
"""

from __future__ import annotations

import numpy as np
import torch

from ..runtime.base import Runner
from ..runtime.decoders import DecoderMixin


class TorchDecoder(DecoderMixin, Runner):
    backend = "torch"
    format = "torch"
    devices = ("cpu",)

    def __init__(self, bundle, **kw) -> None:
        super().__init__(bundle, **kw)
        self._init_lm()

    def _load(self) -> None:
        from .reference import load_reference

        torch.set_num_threads(self.threads)
        self._model = load_reference(self.bundle)
        self._cache = None

    def _reset(self) -> None:
        self._cache = None

    @torch.inference_mode()
    def _step(self, feeds: dict) -> np.ndarray:
        from transformers import DynamicCache

        if self._cache is None:
            self._cache = DynamicCache(config=self._model.config)
        ids, pos = torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["position_ids"])
        out = self._model.base_model(input_ids=ids, position_ids=pos, cache=self._cache, use_cache=True)
        hidden = out.last_hidden_state.index_select(1, torch.from_numpy(feeds["logits_index"][0]))
        return self._model.get_output_embeddings()(hidden).float().numpy()

    def _close(self) -> None:
        self._model = self._cache = None
