"""Seeded random inputs drawn from the tensor specs: weak evidence, said so wherever they are used."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..specs import Signature, random_tensor
from .base import RANDOM, DataSource


class SyntheticSource(DataSource):
    kind = "synthetic"
    evidence = RANDOM

    def __init__(self, signature: Signature, n: int = 256, seed: int = 0, positions=None, role=""):
        super().__init__(positions, role)
        if not 1 <= n <= 1_000_000:
            raise ConfigError(f"synthetic:{n}: choose between 1 and 1,000,000 samples")
        self.signature, self.n, self.seed = signature, n, seed

    def _all(self) -> int:
        return self.n

    def _feeds(self, positions):
        values = self.signature.example_values()
        out = {}
        for k, spec in enumerate(self.signature.inputs):
            rows = []
            for p in positions:
                rng = np.random.default_rng([self.seed, k, int(p)])
                shape = spec.concrete_shape(values)[1:]
                rows.append(random_tensor(spec, shape, rng))
            out[spec.name] = np.stack(rows)
        return out

    def identity(self) -> dict:
        return super().identity() | {"seed": self.seed}
