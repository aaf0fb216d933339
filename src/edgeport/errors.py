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


class WriteError(EdgeportError):
    """A result could not be written (full disk, read-only target); what was there is kept."""

    exit_code = 1


class InputError(EdgeportError):
    """An input array has the wrong rank, shape, dtype or non-finite values."""


class OutputError(EdgeportError):
    """A backend returned outputs that break the manifest's specs (shape, dtype, batch, NaN)."""

    exit_code = 1


class CheckError(EdgeportError):
    """A check produced no evidence: nothing was measured, or an artifact could not run at all."""

    exit_code = 1


class RemoteError(EdgeportError):
    """A remote device or fleet node could not be reached, or its command failed."""

    exit_code = 1


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
    "OutputError",
    "WriteError",
    "ParityError",
    "CheckError",
    "RemoteError",
    "first_line",
    "safe_text",
]


def safe_text(text, limit: int = 2000) -> str:
    """``text`` with control characters, escapes and lone surrogates made visible, for terminals.

    Untrusted text (labels, file names, messages that quote a manifest) must not
    move the cursor, recolour the terminal or start a fake result line.
    """
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + "..."
    out = []
    for ch in s:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o < 0xA0 or 0xD800 <= o < 0xE000 or o in (0x2028, 0x2029, 0x202E, 0x2066):
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when it has none), at most ``limit`` long."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
