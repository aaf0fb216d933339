"""The seed networks, registered with the model registry.

``mnist-mlp`` is the network of Arm's learning path "Create and train a PyTorch
model for digit classification", unchanged (102,762 parameters, softmax out).
``mnist-cnn`` is a small LeNet-style CNN that returns logits.
"""

from __future__ import annotations

import torch
from torch import nn

from ..sources.models import ModelSpec, register


class NeuralNetwork(nn.Module):
    """The seed network: 102,762 trainable parameters, softmax probabilities out."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_stack = nn.Sequential(
            nn.Linear(28 * 28, 96),
            nn.Tanh(),
            nn.Dropout(0.2),
            nn.Linear(96, 256),
            nn.Sigmoid(),
            nn.Dropout(0.2),
            nn.Linear(256, 10),
            nn.Softmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_stack(self.flatten(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores; training uses these with cross-entropy."""
        return self.linear_stack[:-1](self.flatten(x))


class LeNet(nn.Module):
    """LeNet-5: two 5x5 convolutions (6 and 16 channels) with max-pooling, then 120-84-10; logits out."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def forward_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits: the model's ``logits()`` when it has one (the seed MLP), else its output."""
    if hasattr(model, "logits"):
        return model.logits(x)
    return model(x)


register(
    ModelSpec(
        name="mnist-mlp",
        factory=NeuralNetwork,
        input_shape=(1, 28, 28),
        num_classes=10,
        output_kind="probs",
        preset="mnist",
        description="Arm learning-path MNIST MLP (784-96-256-10, tanh/sigmoid, dropout 0.2)",
        train={"epochs": 20, "batch_size": 1024, "lr": 1e-2},  # chosen on the validation split
    )
)
register(
    ModelSpec(
        name="mnist-cnn",
        factory=LeNet,
        input_shape=(1, 28, 28),
        num_classes=10,
        output_kind="logits",
        preset="mnist",
        description="LeNet-5 (conv 6/16 5x5, max-pool, 256-120-84-10), logits",
        train={"epochs": 8, "batch_size": 256, "lr": 4e-3},
    )
)
