"""examples/edge_app.py runs as a user would run it: a subprocess, light runtime only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import export_fixtures as fx
from test_imageio import digit_like

APP = Path(__file__).resolve().parents[1] / "examples" / "edge_app.py"


@pytest.fixture
def bundle(tmp_path_factory, tiny_run, synthetic_mnist):
    return fx.plain_bundle(tmp_path_factory, tiny_run, synthetic_mnist)


BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(name + " is not installed on this edge device")
sys.meta_path.insert(0, _NoTorch())
"""


def run_app(tmp_path, *args):
    """Run the example as on a device without torch: importing torch fails."""
    site = tmp_path / "no_torch_site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, str(APP), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_edge_app_classifies_a_folder(bundle, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    d = digit_like(120, 200)
    Image.fromarray(d).save(folder / "a_white.png")
    Image.fromarray(255 - d).save(folder / "b_black.png")
    Image.fromarray(np.stack([d] * 3, -1)).save(folder / "c_photo.jpg")
    (folder / "d_broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored")
    out = run_app(tmp_path, bundle, folder)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["a_white.png", "b_black.png", "c_photo.jpg"]
    assert lines[0].split(":")[1] == lines[1].split(":")[1]  # same digit, same answer
    assert "d_broken.png: skipped:" in out.stderr and "Traceback" not in out.stderr


def test_edge_app_bad_paths(bundle, tmp_path):
    out = run_app(tmp_path, bundle, tmp_path / "missing")
    assert out.returncode == 2 and "not a folder" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "imgs").mkdir()
    Image.fromarray(digit_like()).save(tmp_path / "imgs" / "x.png")
    out = run_app(tmp_path, tmp_path / "no_bundle", tmp_path / "imgs")
    assert out.returncode == 1 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
