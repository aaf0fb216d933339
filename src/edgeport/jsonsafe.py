"""JSON from files edgeport did not write (manifests, train.json, --preprocess files, COCO
annotations, remote replies): one loader, so every reader refuses the same things (stdlib only).

Python's ``json`` accepts ``NaN``/``Infinity``, turns ``1e999`` into ``inf``, keeps a 400-digit
integer as an int that ``float()`` and ``math.isfinite`` cannot take (``OverflowError``), and
recurses once per nesting level (``RecursionError``).  :func:`loads` refuses all of these as a
``ValueError`` subclass with a short reason, which each caller turns into its own one-line error.
"""

from __future__ import annotations

import json
import math

MAX_INT = 2**63  # larger integers are refused: nothing edgeport reads needs them


class JSONValueError(ValueError):
    """Text that is not JSON edgeport reads: malformed, non-finite, too large or too deep."""


def _constant(name: str):
    raise JSONValueError(f"{name} is not valid JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise JSONValueError(f"number {text[:40]} is out of range")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 19:
        raise JSONValueError(f"integer {text[:24]}... is out of range")
    value = int(text)
    if abs(value) > MAX_INT:
        raise JSONValueError(f"integer {text} is out of range")
    return value


def loads(text: str | bytes):
    """``json.loads`` that refuses NaN/Infinity, non-finite numbers, integers beyond 2**63 and
    nesting deeper than the interpreter can follow; :class:`JSONValueError` with the reason."""
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except JSONValueError:
        raise
    except RecursionError:
        raise JSONValueError("it is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise JSONValueError(f"it is not UTF-8 text ({exc.reason})") from None
    except ValueError as exc:
        raise JSONValueError(str(exc)[:160]) from None


def read_preprocess_file(path) -> object:
    """A ``--preprocess FILE.json``: at most 1 MiB, through :func:`loads`; ConfigError otherwise."""
    from pathlib import Path

    from .errors import ConfigError

    p = Path(path)
    try:
        if p.stat().st_size > 1 << 20:
            raise ConfigError(f"--preprocess {p}: file is larger than 1 MiB; it should hold a few steps")
        return loads(p.read_bytes())
    except OSError as exc:
        raise ConfigError(f"--preprocess {p} cannot be read ({exc.strerror}); check the path") from None
    except JSONValueError as exc:
        raise ConfigError(f"--preprocess {p} is not valid JSON ({str(exc)[:100]}); fix the file") from None


__all__ = ["JSONValueError", "MAX_INT", "loads", "read_preprocess_file"]
