"""Bundles exported once per session for the export and bundle tests.

Test modules wrap these helpers in their own fixtures; the module-level cache
keeps the export to one per session however many modules use it.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from edgeport.config import ExportConfig

_CACHE: dict[str, Path] = {}
# A bundle written by edgeport 0.1 (manifest schema 1), committed as a fixture; read-only.
SCHEMA1 = Path(__file__).resolve().parent / "fixtures" / "schema1_bundle"


def tree_digest(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file (and symlink target) under ``folder``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def full_bundle(tmp_path_factory, tiny_run, synthetic_mnist) -> Path:
    """Every format, plus the fp16 OpenVINO IR and the mobile TorchScript file."""
    if "full" not in _CACHE:
        from edgeport.export.api import export

        out = tmp_path_factory.mktemp("export") / "full"
        export(
            tiny_run,
            out,
            config=ExportConfig(fp16=True, mobile=True),
            data_dir=synthetic_mnist,
            progress=False,
        )
        _CACHE["full"] = out
    return _CACHE["full"]


def plain_bundle(tmp_path_factory, tiny_run, synthetic_mnist) -> Path:
    """The default export (every format, fp32) of the session's tiny run."""
    if "plain" not in _CACHE:
        from edgeport.export.api import export

        out = tmp_path_factory.mktemp("export") / "plain"
        export(tiny_run, out, data_dir=synthetic_mnist, progress=False)
        _CACHE["plain"] = out
    return _CACHE["plain"]


def bundle_copy(full_bundle, tmp_path) -> Path:
    """A private copy of the session bundle that a test may damage."""
    dst = tmp_path / "bundle"
    shutil.copytree(full_bundle, dst)
    return dst


def two_io_bundle(tmp_path_factory) -> Path:
    """user_models:two_in_two_out (image + vector -> logits + embedding), every format, random weights."""
    if "two_io" not in _CACHE:
        from edgeport.export.api import export

        out = tmp_path_factory.mktemp("export") / "two_io"
        export(
            model_ref="user_models:two_in_two_out",
            random_init=True,
            inputs=["image:1,3,16,16", "vector:1,6:float32"],
            out=out,
            progress=False,
        )
        _CACHE["two_io"] = out
    return _CACHE["two_io"]
