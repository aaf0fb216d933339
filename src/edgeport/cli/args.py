"""argparse pieces every subcommand shares: value types, the parser and help
formatter classes, shared option adders and the --out pre-flight check."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

PROG = "edgeport"

_INF = float("inf")


def _number(text: str, convert: Callable[[str], float], ok: Callable[[float], bool], expected: str):
    """Parse ``text`` with ``convert`` (int or float) and insist on ``ok(value)``.

    Whole numbers echo the parsed value in the range error, other numbers the text as typed.
    """
    whole = convert is int
    try:
        value = convert(text)
    except ValueError:
        noun = "a whole number" if whole else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value if whole else text}")
    return value


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a number >= 1")


def _nonneg_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a number >= 0")


def _positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0 and v != _INF, "a positive number")


def _nonneg_float(text: str) -> float:
    # the chained comparison also refuses nan
    return _number(text, float, lambda v: 0 <= v < _INF, "a finite number >= 0")


def _opset(text: str) -> int:
    value = _positive_int(text)
    if value < 17:
        raise argparse.ArgumentTypeError(f"ONNX opset {value} is too old; choose 17 or newer")
    return value


def _points(text: str) -> float:
    value = _nonneg_float(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"expected accuracy points between 0 and 100, got {text}")
    return value


def _csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _int_list(text: str) -> list[int]:
    return [_positive_int(t) for t in _csv_list(text)]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, unless there is none or the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
            or "default" in text
        ):
            return text
        default = action.default
        if isinstance(default, (list, tuple)):
            return f"{text} (default: {','.join(map(str, default))})"
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``edgeport CMD: error: ...; see edgeport CMD --help``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="MNIST root holding MNIST/raw/ (default: $EDGEPORT_MNIST_ROOT, else ~/.cache/edgeport/mnist, downloaded if missing)",
    )


def raise_config(message: str) -> None:
    from ..errors import ConfigError

    raise ConfigError(message)


def _check_writable(path: str, force: bool) -> None:
    """Refuse an output file that exists (without --force) or cannot be written, before any work."""
    from ..errors import ConfigError

    if os.path.isdir(path):
        raise ConfigError(f"--out {path} is a folder; give a file name")
    if os.path.exists(path) and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise ConfigError(f"{parent} is a file, not a folder; choose another --out")
    if not os.path.isdir(parent):
        raise ConfigError(f"folder {parent} does not exist; create it or choose another --out")
    import tempfile

    try:  # os.access says yes to root everywhere, and knows nothing of read-only mounts or /proc
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write to {parent} ({exc.strerror or exc}); choose another --out") from None
