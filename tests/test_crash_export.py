"""Crashes during export (issue 7, check 7), the short version.

A few SIGKILLs of an export subprocess at random moments (the 20-trial run is
``benchmarks/crash_export.py``), then a full disk and a read-only target: the
previous bundle always survives, nothing half-written appears under the
target name, and leftovers are cleaned by the next export.
"""

from __future__ import annotations

import errno
import importlib.util
from pathlib import Path

import pytest

from edgeport.cli import main
from export_fixtures import tree_digest

ROOT = Path(__file__).resolve().parents[1]


def _crash_module():
    spec = importlib.util.spec_from_file_location("crash_export", ROOT / "benchmarks" / "crash_export.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sigkill_during_export_loses_nothing(tmp_path, tiny_run, synthetic_mnist, monkeypatch):
    monkeypatch.setenv("EDGEPORT_CRASH_FORMATS", "torchscript,onnx,openvino")  # the native writers, quickly
    crash = _crash_module()
    counts = crash.crash_trials(
        tiny_run, synthetic_mnist, tmp_path / "bundle", trials=3, seed=1, int8=False, log=lambda _msg: None
    )
    assert not counts["failures"], counts
    assert counts["bundle ok"] == 3 and counts["killed"] + counts["finished first"] == 3, counts
    assert not crash.leftovers(tmp_path / "bundle")


@pytest.fixture
def old_bundle(tmp_path, tiny_run, synthetic_mnist):
    target = tmp_path / "bundle"
    argv = [
        "export",
        "--run",
        str(tiny_run),
        "--out",
        str(target),
        "--formats",
        "onnx",
        "--data-dir",
        str(synthetic_mnist),
        "--quiet",
    ]
    assert main(argv) == 0
    return target, argv + ["--force"]


def _assert_kept(target: Path, digest: dict, capsys, rc: int, what: str) -> None:
    from edgeport.bundle import load_bundle

    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0 and len(lines) == 1 and "Traceback" not in err, err
    assert what in lines[0] and ("choose" in lines[0] or "free" in lines[0]), lines[0]
    assert tree_digest(target) == digest, "the previous bundle changed"
    load_bundle(target, verify=True)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name], "leftovers beside the bundle"


def test_full_disk_keeps_the_old_bundle(old_bundle, monkeypatch, capsys):
    import edgeport.export.api as bnd

    target, argv = old_bundle
    digest = tree_digest(target)
    capsys.readouterr()

    def no_space(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bnd, "write_manifest", no_space)
    _assert_kept(target, digest, capsys, main(argv), "No space left on device")


def test_full_disk_at_commit_keeps_the_old_bundle(old_bundle, monkeypatch, capsys):
    import edgeport.fsutil as ckpt

    target, argv = old_bundle
    digest = tree_digest(target)
    capsys.readouterr()

    def no_space(_folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "fsync_tree", no_space)
    _assert_kept(target, digest, capsys, main(argv), "No space left on device")


def test_read_only_target_keeps_the_old_bundle(old_bundle, monkeypatch, capsys):
    import edgeport.fsutil as ckpt

    target, argv = old_bundle
    digest = tree_digest(target)
    capsys.readouterr()

    def read_only(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ckpt.tempfile, "mkdtemp", read_only)  # every new folder beside the target fails
    _assert_kept(target, digest, capsys, main(argv), "Read-only file system")


def test_atomic_commit_swaps_in_one_step(tmp_path):
    from edgeport.fsutil import atomic_commit

    old, new = tmp_path / "b", tmp_path / ".b.tmp-1"
    old.mkdir()
    (old / "f").write_text("old")
    new.mkdir()
    (new / "f").write_text("new")
    atomic_commit(new, old)
    assert (old / "f").read_text() == "new" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
