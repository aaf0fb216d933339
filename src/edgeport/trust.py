"""The one trust rule: which model sources run code, and when edgeport lets them (stdlib only).

Rebuilding a model can run code that is not an installed library: ``pkg.mod:factory``
imports a module, a ``.pt2`` is unpickled by ``torch.export.load``, and a TorchScript
archive is code.  The rule, the same for every command and the Python API:

- a reference the user types (``--model``) is code the user chose to run, except a ``.pt2``:
  a downloaded ``.pt2`` is a pickle like any other, so it needs the opt-in wherever it comes from;
- a reference or archive read from a file (a run folder's ``train.json``, a bundle's manifest and
  artifacts, a resumed pipeline's bundle) runs code only with the opt-in
  (``--trust-model-code`` or ``EDGEPORT_TRUST_MODEL_CODE=1``), unless this very process wrote it;
- model arguments read from a file never name files (no ``checkpoint_path`` that makes a library
  read any local file), and are plain bounded JSON values.

:data:`SOURCES` is that rule as a table (the README's security table says the same).
"""

from __future__ import annotations

import math
import os
import re

from .errors import BundleError, ConfigError

TRUST_ENV = "EDGEPORT_TRUST_MODEL_CODE"
OPT_IN = f"--trust-model-code (or {TRUST_ENV}=1)"

# (model source, what rebuilding it runs, when it runs)
SOURCES = (
    ("registry name (mnist-mlp, mnist-cnn)", "edgeport's own code", "always"),
    ("torchvision:NAME, timm:NAME", "the installed library", "always; no argument that names a file"),
    ("hf:DIR, hf:ORG/NAME (language models)", "transformers, trust_remote_code=False", "always"),
    ("pkg.mod:factory on the command line", "an import of pkg.mod", "always: you named it"),
    ("pkg.mod:factory from a run folder or bundle", "an import of pkg.mod", "only with the opt-in"),
    (".pt2 (ExportedProgram), anywhere", "an unpickle", "only with the opt-in"),
    (
        "TorchScript archive in a bundle",
        "TorchScript code",
        "only with the opt-in, or written by this process",
    ),
    ("ONNX, OpenVINO IR, ExecuTorch .pte, safetensors", "no code", "always (checked before parsing)"),
)

# Model arguments whose name says they point at a file, a folder or a download.
_PATH_KEY = re.compile(r"path|file|dir|url|uri|checkpoint|pretrained|cache|weights|root|download", re.I)
MAX_ARG_INT = 2**31 - 1
MAX_ARG_TEXT = 200
MAX_ARG_LIST = 64


def runs_code(ref: str) -> bool:
    """Whether rebuilding the model ``ref`` runs code that is not an installed library.

    ``pkg.mod:factory`` imports ``pkg.mod``; a saved ExportedProgram is unpickled.
    Registry names and ``torchvision:``/``timm:`` names only call installed libraries; so do ``hf:``
    checkpoints (config + safetensors, read with ``trust_remote_code=False``).
    """
    if ref == "exported_program" or ref.endswith(".pt2"):
        return True
    return ":" in ref and not ref.startswith(("torchvision:", "timm:", "hf:"))


def is_pickle(ref: str) -> bool:
    """A ``.pt2`` (or a bundle's ExportedProgram): an unpickle wherever it comes from."""
    return ref == "exported_program" or ref.endswith(".pt2")


def code_is_trusted(bundle=None) -> bool:
    """Whether code named or carried by ``bundle`` may run: this process wrote it, or the user said so
    (``load_bundle(..., trust_model_code=True)``, or the environment's opt-in)."""
    if getattr(bundle, "trusted", False) or getattr(bundle, "trust_model_code", False):
        return True
    return os.environ.get(TRUST_ENV) == "1"


def require(ref: str, *, trusted: bool, where: str) -> None:
    """:class:`ConfigError` unless rebuilding ``ref`` (named by ``where``) may run its code."""
    if trusted or not runs_code(ref):
        return
    what = "a pickle that torch.export.load unpickles" if is_pickle(ref) else "code to import"
    shown = ref[:120].encode("ascii", "backslashreplace").decode("ascii")
    raise ConfigError(
        f"{where} names the model {shown!r}, which is {what}, and that runs code; nothing was loaded. "
        f"If you trust where it came from, pass {OPT_IN} and run again"
    )


def check_model_args(args, *, where: str, from_file: bool) -> dict:
    """``args`` as factory keyword arguments: identifiers mapped to bounded JSON scalars or short lists.

    ``from_file``: the arguments come from a bundle or a run folder (:class:`BundleError`), so no
    argument may name a file; otherwise they come from ``--model-arg`` (:class:`ConfigError`).
    """
    error = BundleError if from_file else ConfigError
    fix = (
        "the file may have been tampered with; re-export or retrain it"
        if from_file
        else "fix --model-arg (NAME=VALUE, e.g. num_classes=10)"
    )
    if not isinstance(args, dict):
        raise error(f"{where}: model arguments must be an object of NAME: VALUE; {fix}")
    for key, value in args.items():
        shown = str(key)[:40].encode("ascii", "backslashreplace").decode("ascii")
        if not isinstance(key, str) or not key.isidentifier() or len(key) > 64:
            raise error(f"{where}: model argument {shown!r} is not a Python identifier; {fix}")
        problem = _arg_problem(value)
        if problem:
            raise error(f"{where}: model argument {shown}={_short(value)} {problem}; {fix}")
        if _PATH_KEY.search(key) or _looks_like_path(value):
            why = (
                "names a file, and model arguments read from a bundle or run folder never do (they "
                "could make a library read any local file)"
                if from_file
                else "names a file or a download; load weights with --weights instead"
            )
            raise error(f"{where}: model argument {shown}={_short(value)} {why}; {fix}")
    return dict(args)


def _arg_problem(value, depth: int = 0) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return "" if abs(value) <= MAX_ARG_INT else f"is out of range (at most {MAX_ARG_INT:,} in size)"
    if isinstance(value, float):
        return "" if math.isfinite(value) and abs(value) <= 1e15 else "is not a finite number up to 1e15"
    if isinstance(value, str):
        return "" if len(value) <= MAX_ARG_TEXT else f"is longer than {MAX_ARG_TEXT} characters"
    if isinstance(value, list) and depth == 0:
        if len(value) > MAX_ARG_LIST:
            return f"has more than {MAX_ARG_LIST} items"
        return next((p for p in (_arg_problem(v, 1) for v in value) if p), "")
    return "must be a number, string, bool, null or a short list of those"


def _looks_like_path(value) -> bool:
    if isinstance(value, list):
        return any(_looks_like_path(v) for v in value)
    return isinstance(value, str) and (
        "/" in value or "\\" in value or value.startswith(("~", "./", "../", "file:"))
    )


def _short(value) -> str:
    return repr(value)[:40].encode("ascii", "backslashreplace").decode("ascii")


__all__ = [
    "OPT_IN",
    "SOURCES",
    "TRUST_ENV",
    "check_model_args",
    "code_is_trusted",
    "is_pickle",
    "require",
    "runs_code",
]
