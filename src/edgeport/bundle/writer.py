"""Writing a bundle into a staging folder: hashed file entries, artifacts, the manifest.

Used by the export half; stdlib only.  The staging folder itself comes from
:func:`edgeport.fsutil.staging_dir`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .files import hash_file
from .manifest import Artifact, FileEntry, Manifest
from .paths import MANIFEST_FILE, check_relpath


def file_entry(root: Path, rel: str) -> FileEntry:
    """Hash a file inside a (staging) bundle folder."""
    check_relpath("file", rel)
    sha, size = hash_file(root / rel)
    return FileEntry(rel, sha, size)


def make_artifact(
    root: Path, format: str, precision: str, file: str, extra_files=(), details=None
) -> Artifact:
    main = file_entry(root, file)
    return Artifact(
        format,
        precision,
        main.path,
        main.sha256,
        main.bytes,
        tuple(file_entry(root, e) for e in extra_files),
        dict(details or {}),
    )


def write_bytes(root: Path, rel: str, data: bytes) -> Path:
    """Write ``data`` to ``root/rel`` from Python, so a full disk is an ``OSError`` here, never a native abort."""
    check_relpath("file", rel)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def write_manifest(root: Path, manifest: Manifest) -> bytes:
    """Write ``manifest.json``; returns its bytes (a reader can tell this very bundle by them)."""
    text = manifest.to_json()
    Manifest.from_dict(json.loads(text))  # the manifest we write must read back
    data = text.encode("utf-8")
    (root / MANIFEST_FILE).write_bytes(data)
    return data
