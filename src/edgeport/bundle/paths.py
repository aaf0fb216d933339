"""Bundle-relative paths that cannot leave the bundle.  stdlib only."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from ..errors import BundleError

MANIFEST_FILE = "manifest.json"
HINT = "re-export the bundle (edgeport export --force) or restore it from a trusted copy"
MAX_PATH = 512
MAX_COMPONENT = 200
_PLAIN = re.compile(r"^[A-Za-z0-9._+@=,-]+$")


def check_relpath(where: str, rel) -> str:
    """A plain bundle-relative posix path: no ``..``, not absolute, no odd characters, not too long."""
    if not isinstance(rel, str):
        raise BundleError(f"{MANIFEST_FILE}: {where} must be a string path, got {type(rel).__name__}; {HINT}")
    parts = rel.split("/")
    if (
        not rel
        or len(rel) > MAX_PATH
        or PurePosixPath(rel).is_absolute()
        or any(p in ("..", ".", "") or len(p) > MAX_COMPONENT or not _PLAIN.match(p) for p in parts)
    ):
        shown = rel[:80].encode("ascii", "backslashreplace").decode("ascii")
        raise BundleError(
            f"{MANIFEST_FILE}: {where} path {shown!r} leaves the bundle or is not a plain relative path "
            f"(letters, digits and . _ + @ = , - only, at most {MAX_PATH} characters); "
            f"the bundle may have been tampered with; {HINT}"
        )
    if rel == MANIFEST_FILE:
        raise BundleError(f"{MANIFEST_FILE}: {where} may not name the manifest itself")
    return rel
