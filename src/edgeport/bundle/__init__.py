"""The bundle: a folder of exported artifacts plus a versioned ``manifest.json``.

This package sits below both halves of edgeport: the export half writes
bundles with :mod:`.writer`, the runtime half reads them with
:func:`load_bundle`.  numpy + stdlib only, never torch.

:func:`load_bundle` checks every path, type, size and sha256 *before* any
parser sees a file, and :meth:`Bundle.read_verified` re-checks the bytes a
runner is about to parse, so a file swapped after loading is caught too.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ..errors import BundleError
from ..trust import TRUST_ENV, code_is_trusted
from ..trust import runs_code as model_runs_code
from .files import open_dir, open_entry, read_entry, read_fd, read_small, sha256_bytes
from .manifest import (
    PRECISIONS,
    RANDOM_WEIGHTS_WARNING,
    SCHEMA_VERSION,
    Artifact,
    FileEntry,
    Manifest,
    parse_manifest,
)
from .paths import HINT, MANIFEST_FILE, check_relpath

# The manifest is small JSON; anything bigger is refused before it is read.
MAX_MANIFEST_BYTES = 16 << 20
# Golden inputs and outputs are read whole: at most this many bytes once decompressed.
GOLDEN_MAX_BYTES = 2 << 30

__all__ = [
    "Artifact",
    "Bundle",
    "FileEntry",
    "HINT",
    "MANIFEST_FILE",
    "Manifest",
    "PRECISIONS",
    "RANDOM_WEIGHTS_WARNING",
    "SCHEMA_VERSION",
    "TRUST_ENV",
    "check_relpath",
    "code_is_trusted",
    "model_runs_code",
    "load_bundle",
    "parse_manifest",
    "sha256_bytes",
]


class Bundle:
    """A loaded, verified bundle.  ``trusted`` is True only for a bundle this process just wrote;
    ``trust_model_code`` is the caller's opt-in (:mod:`edgeport.trust`) for this bundle alone.

    A bundle from :func:`load_bundle` keeps a read handle on every file its manifest lists, opened
    when it was loaded, and reads them through those handles only: a concurrent ``export --force``
    that swaps a new bundle in (and deletes the old folder) cannot mix the new folder's files into
    this one.  :meth:`close` (or ``with``, or dropping the object) lets them go.
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        *,
        trusted: bool = False,
        handles: dict[str, int] | None = None,
        manifest_bytes: bytes | None = None,
    ) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.trusted = trusted
        self.trust_model_code = False
        self._handles = dict(handles or {})
        self.manifest_bytes = manifest_bytes  # the manifest as read, for copying the bundle elsewhere

    def close(self) -> None:
        handles, self._handles = self._handles, {}
        for fd in handles.values():
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_handles"} | {"_handles": {}}

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, artifacts=[{', '.join(a.key for a in self.artifacts)}])"

    # -- what the model looks like -------------------------------------------
    @property
    def signature(self):
        return self.manifest.signature

    @property
    def inputs(self):
        return self.manifest.signature.inputs

    @property
    def outputs(self):
        return self.manifest.signature.outputs

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.labels)

    @property
    def preprocessing(self):
        """The manifest's preprocessing steps, runnable: :class:`~edgeport.preprocessing.Preprocessing` for an
        image input, :class:`~edgeport.audio.AudioPreprocessing` for an audio one; None without either."""
        from ..preprocessing import from_manifest

        pre = self.manifest.preprocessing
        return None if pre is None else from_manifest(pre)

    @property
    def warnings(self) -> list[str]:
        return list(self.manifest.warnings)

    @property
    def task(self):
        """The bundle's task object (:mod:`edgeport.tasks`): what its outputs mean and how they are judged."""
        cached = getattr(self, "_task", None)
        if cached is None:
            from ..tasks import registry

            cached = self._task = registry.for_manifest(self.manifest)
        return cached

    @property
    def failures(self) -> list[dict]:
        """Formats that failed at export, with the stage and the reason."""
        return list(self.manifest.failures)

    @property
    def random_init(self) -> bool:
        return self.manifest.random_init

    # -- artifacts -------------------------------------------------------------
    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        return self.manifest.artifacts

    def has(self, format: str, precision: str = "fp32") -> bool:
        return any(a.format == format and a.precision == precision for a in self.artifacts)

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
        return (self.path / self._entry(artifact, file).path).absolute()

    def read_verified(self, artifact: Artifact, file: str | None = None) -> bytes:
        e = self._entry(artifact, file)
        return self.read_file(e.path, e.bytes, e.sha256)

    def read_file(self, rel: str, size: int, sha256: str | None) -> bytes:
        """The verified bytes of ``rel``: through the handle opened at load time when there is one."""
        fd = self._handles.get(rel)
        if fd is not None:
            return read_fd(fd, self.path, rel, size, sha256)
        dfd = open_dir(self.path)
        try:
            return read_entry(dfd, self.path, rel, size, sha256)
        finally:
            os.close(dfd)

    # -- golden I/O --------------------------------------------------------------
    def golden(self) -> tuple[dict, dict] | None:
        """(inputs, reference outputs) stored at export, by tensor name; None if the bundle has none.

        Read through the bounded npz reader (:mod:`edgeport.npzio`, at most :data:`GOLDEN_MAX_BYTES`
        decompressed); every input and output of the signature must be there, numeric, one row per
        sample, the same number of rows in each.
        """
        from ..npzio import load_all

        g = self.manifest.golden
        if not g:
            return None
        arrays = []
        for key, names in (("inputs", self.signature.input_names), ("outputs", self.signature.output_names)):
            entry = _golden_entry(self.manifest, g[key])
            data = self.read_file(entry.path, entry.bytes, entry.sha256)
            where = f"{entry.path} in bundle {self.path}"
            found = load_all(data, where=where, error=BundleError, cap=GOLDEN_MAX_BYTES, fix=HINT)
            missing = [n for n in names if n not in found]
            if missing:
                raise BundleError(
                    f"{where} lacks the {key[:-1]} array(s) {', '.join(map(repr, missing[:5]))} "
                    f"(it holds {', '.join(sorted(found)[:5]) or 'none'}); {HINT}"
                )
            arrays.append({n: found[n] for n in names})
        rows = {len(a) for d in arrays for a in d.values()}
        if len(rows) != 1:
            raise BundleError(
                f"golden I/O of bundle {self.path} has arrays of different lengths {sorted(rows)}; {HINT}"
            )
        return arrays[0], arrays[1]

    # -- raw text ----------------------------------------------------------------
    def text_encoder(self):
        """Strings -> token-id feeds with the bundle's tokenizer (:class:`edgeport.text.TextEncoder`); None if
        the bundle keeps no tokenizer.  Needs the ``tokenizers`` package, never torch."""
        entry = self.manifest.text_entry()
        if entry is None:
            return None
        from ..text import TextEncoder

        data = self.read_file(entry.path, entry.bytes, entry.sha256)
        return TextEncoder(self.manifest.text, data, self.signature, f"{entry.path} in bundle {self.path}")

    # -- running ---------------------------------------------------------------
    def runner(self, backend: str, precision: str = "fp32", device: str = "cpu", **options):
        from ..runtime.registry import create_runner

        return create_runner(self, backend, precision=precision, device=device, **options)


def _golden_entry(manifest: Manifest, rel: str) -> FileEntry:
    for f in (manifest.golden or {}).get("files", []):
        if f.get("path") == rel:
            return FileEntry.from_dict(f, "golden.files")
    for a in manifest.artifacts:
        for e in a.files():
            if e.path == rel:
                return e
    raise BundleError(f"{MANIFEST_FILE}: golden file {rel!r} is not listed with a hash; {HINT}")


def _load_once(root: Path, verify: bool) -> tuple[Bundle | None, int, BundleError | None]:
    """(bundle or None, inode of the folder read, the error if it failed)."""
    fd = open_dir(root)
    handles: dict[str, int] = {}
    try:
        ino = os.fstat(fd).st_ino
        try:
            text = read_small(fd, root, MANIFEST_FILE, MAX_MANIFEST_BYTES)
            manifest = parse_manifest(text)
            entries = [e for a in manifest.artifacts for e in a.files()]
            if manifest.golden:
                entries += [FileEntry.from_dict(f, "golden.files") for f in manifest.golden.get("files", [])]
            if manifest.text:
                entries.append(manifest.text_entry())
            for e in entries:
                if e.path not in handles:
                    handles[e.path] = open_entry(fd, root, e.path, e.bytes)
                read_fd(handles[e.path], root, e.path, e.bytes, e.sha256 if verify else None)
        except BundleError as exc:
            for h in handles.values():
                os.close(h)
            return None, ino, exc
        return Bundle(root, manifest, handles=handles, manifest_bytes=text), ino, None
    finally:
        os.close(fd)


def _inode(root: Path) -> int | None:
    try:
        return os.stat(root, follow_symlinks=False).st_ino
    except OSError:
        return None


def load_bundle(path: str | os.PathLike, *, verify: bool = True, trust_model_code: bool = False) -> Bundle:
    """Read ``manifest.json`` and verify every listed file's size and sha256 before anything parses it.

    ``trust_model_code``: let this bundle's model code run (its TorchScript, its ``.pt2``, the
    ``pkg.mod:factory`` its manifest names): an argument, for this bundle only; the CLI passes
    ``--trust-model-code`` (default: ``EDGEPORT_TRUST_MODEL_CODE``).

    Everything is read through one handle on the folder, and the bundle keeps a handle on each
    file it verified, so later reads see these very files.  If the folder is replaced meanwhile
    (a concurrent ``export --force`` swaps it in with one rename), the read is done again on the
    new folder.
    """
    root = Path(path)
    for attempt in range(3):
        bundle, ino, err = _load_once(root, verify)
        if _inode(root) == ino or attempt == 2:
            break
        if bundle is not None:  # swapped while we read: read the new one
            bundle.close()
    if err is not None:
        raise err
    bundle.trust_model_code = bool(trust_model_code)
    return bundle
