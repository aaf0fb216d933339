"""The bundle: a folder of exported artifacts plus a versioned ``manifest.json``.

torch-free (numpy + stdlib only), so the light runtime loads bundles without
torch.  :func:`load_bundle` checks every path and every sha256 *before* any
parser sees a file, and :meth:`Bundle.read_verified` re-checks the bytes a
runner is about to parse, so a file swapped after loading is caught too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from ..errors import BundleError
from ..preprocessing import Preprocessing
from .manifest import (  # noqa: F401  (re-exported: the pinned interface lives here)
    _HINT,
    ARTIFACT_FORMATS,
    MANIFEST_FILE,
    PRECISIONS,
    SCHEMA_VERSION,
    Artifact,
    FileEntry,
    Manifest,
    check_relpath,
    parse_manifest,
    sha256_bytes,
)


def resolve_inside(root: Path, rel: str) -> Path:
    """``root / rel`` after checking that no component is a symlink and it stays inside ``root``."""
    check_relpath("file", rel)
    path = root
    for part in rel.split("/"):
        path = path / part
        if path.is_symlink():
            raise BundleError(
                f"{rel} in bundle {root} is a symlink (or lies under one); bundles may hold only plain files. "
                f"{_HINT}"
            )
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise BundleError(f"{rel} resolves outside bundle {root}; {_HINT}")
    return path


def _read_checked(root: Path, entry: FileEntry) -> bytes:
    path = resolve_inside(root, entry.path)
    if not path.is_file():
        raise BundleError(f"{entry.path} is missing from bundle {root}; {_HINT}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{entry.path} in bundle {root} cannot be read ({exc.strerror}); {_HINT}") from None
    if len(data) != entry.bytes or sha256_bytes(data) != entry.sha256:
        raise BundleError(
            f"{entry.path} in bundle {root} does not match its manifest hash (expected sha256 "
            f"{entry.sha256[:16]}..., {entry.bytes} bytes; found {len(data)} bytes): it is corrupt or "
            f"was modified; {_HINT}"
        )
    return data


class Bundle:
    """A loaded, verified bundle."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = Path(path)
        self.manifest = manifest

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, artifacts=[{', '.join(a.key for a in self.artifacts)}])"

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.manifest.preprocessing)

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.labels)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.manifest.input["shape"][1:])

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        return self.manifest.artifacts

    def artifact(self, format: str, precision: str = "fp32") -> Artifact:
        for a in self.artifacts:
            if a.format == format and a.precision == precision:
                return a
        have = ", ".join(a.key for a in self.artifacts) or "none"
        raise BundleError(
            f"bundle {self.path} has no {format}/{precision} artifact (it has: {have}); "
            "export it with the matching --formats/--fp16/--int8 options"
        )

    def _entry(self, artifact: Artifact, file: str | None) -> FileEntry:
        for e in artifact.files():
            if file is None or e.path == file or PurePosixPath(e.path).name == file:
                return e
        raise BundleError(f"artifact {artifact.key} of bundle {self.path} has no file {file!r}")

    def path_of(self, artifact: Artifact, file: str | None = None) -> Path:
        return resolve_inside(self.path, self._entry(artifact, file).path).absolute()

    def read_verified(self, artifact: Artifact, file: str | None = None) -> bytes:
        return _read_checked(self.path, self._entry(artifact, file))

    def runner(self, backend: str, precision: str = "fp32", device: str = "cpu", **options):
        from ..runtime.registry import create_runner

        return create_runner(self, backend, precision=precision, device=device, **options)


def load_bundle(path: str | os.PathLike, *, verify: bool = True) -> Bundle:
    """Read ``manifest.json`` and verify every listed file's sha256 before anything parses it."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(
            f"bundle {root} not found or not a folder; export one first (edgeport export --out {root})"
        )
    mpath = root / MANIFEST_FILE
    if mpath.is_symlink():
        raise BundleError(f"{MANIFEST_FILE} in bundle {root} is a symlink; {_HINT}")
    if not mpath.is_file():
        raise BundleError(
            f"{MANIFEST_FILE} is missing from bundle {root}; is it a folder written by edgeport export?"
        )
    try:
        text = mpath.read_bytes()
    except OSError as exc:
        raise BundleError(f"{mpath} cannot be read ({exc.strerror})") from None
    manifest = parse_manifest(text)
    for artifact in manifest.artifacts:
        for entry in artifact.files():
            if verify:
                _read_checked(root, entry)
            else:
                p = resolve_inside(root, entry.path)
                if not p.is_file():
                    raise BundleError(f"{entry.path} is missing from bundle {root}; {_HINT}")
    return Bundle(root, manifest)


def file_entry(root: Path, rel: str) -> FileEntry:
    """Hash a file inside a (staging) bundle folder."""
    data = resolve_inside(root, check_relpath("file", rel)).read_bytes()
    return FileEntry(rel, sha256_bytes(data), len(data))


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


def write_manifest(root: Path, manifest: Manifest) -> None:
    Manifest.from_dict(json.loads(manifest.to_json()))  # the manifest we write must read back
    (root / MANIFEST_FILE).write_text(manifest.to_json())
