"""The whole edgeport error hierarchy.

Every error a user can cause is an :class:`EdgeportError`.  Messages say what
happened, what was seen, what was expected and what to do.  The
``edgeport.cli`` package is the only place that catches them; it prints one
line and exits with
``exit_code`` (2 for usage/configuration problems, 1 for failed checks).
"""

from __future__ import annotations


class EdgeportError(Exception):
    """Base class of every error edgeport raises on purpose."""

    exit_code = 2


class ConfigError(EdgeportError):
    """An option or configuration value is invalid."""


class DataError(EdgeportError):
    """Input data is missing, unreadable or malformed."""


class BackendUnavailableError(EdgeportError):
    """A backend or device cannot be used here (missing package, no device)."""


class ExportError(EdgeportError):
    """A model could not be exported, or an exported artifact failed a check."""

    exit_code = 1


class BundleError(EdgeportError):
    """A bundle is missing, corrupt, tampered with, or cannot be written."""


class InputError(EdgeportError):
    """An input array has the wrong rank, shape, dtype or non-finite values."""


class ParityError(EdgeportError):
    """Artifact outputs differ from the PyTorch reference beyond tolerance."""

    exit_code = 1

    def __init__(self, message: str, failures: list | None = None):
        super().__init__(message)
        self.failures = list(failures or [])


__all__ = [
    "EdgeportError",
    "ConfigError",
    "DataError",
    "BackendUnavailableError",
    "ExportError",
    "BundleError",
    "InputError",
    "ParityError",
]
