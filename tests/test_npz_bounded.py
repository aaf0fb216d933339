"""Hostile and malformed npz files (issue 22): bounded decompression, lazy rows, one-line errors for
``npz:`` data and for a bundle's golden files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from edgeport.bundle import load_bundle
from edgeport.errors import BundleError, DataError
from edgeport.npzio import NpzReader
from edgeport.sources.data import open_source
from edgeport.specs import BATCH, Dim, Signature, TensorSpec


def vec_signature(n=4, dtype="float32") -> Signature:
    x = TensorSpec(name="x", dtype=dtype, shape=(BATCH, n))
    y = TensorSpec(name="y", dtype="float32", shape=(BATCH, 3), kind="logits")
    return Signature((x,), (y,), {BATCH: Dim(BATCH, 1, 64)})


def one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def npy_bytes(header: dict, data: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


# --------------------------------------------------------------------------- lazy rows


@pytest.mark.parametrize("save", ["savez", "savez_compressed"])
def test_rows_match_numpy_in_any_order(tmp_path, save):
    rng = np.random.default_rng(0)
    arrays = {
        "c": rng.normal(size=(50, 3, 2)).astype(np.float32),
        "f": np.asfortranarray(rng.normal(size=(50, 5))),
        "b": rng.integers(0, 9, (50, 4)).astype(">i4"),  # big-endian: read back in native order
    }
    getattr(np, save)(tmp_path / "a.npz", **arrays)
    pos = np.array([49, 3, 4, 5, 0, 3, 17])  # unsorted, repeated, runs
    with NpzReader(tmp_path / "a.npz", where="npz:a") as z:
        for name, a in arrays.items():
            got = z.rows(name, pos)
            np.testing.assert_array_equal(got, a[pos])
            assert got.dtype.isnative
            np.testing.assert_array_equal(z.rows(name, [1, 2]), a[[1, 2]])  # backwards: starts over
            np.testing.assert_array_equal(z.read(name), a)


# --------------------------------------------------------------------------- malformed data files


def write_bad(tmp_path, case: str):
    p = tmp_path / f"{case}.npz"
    x = np.ones((10, 4), np.float32)
    if case == "bad zip":
        p.write_bytes(b"PK\x03\x04 this is not a zip at all")
    elif case == "bad crc":
        np.savez(p, x=x)
        data = bytearray(p.read_bytes())
        data[200] ^= 0xFF  # inside x's data (a stored member): the CRC no longer matches
        p.write_bytes(bytes(data))
    elif case == "object array":
        np.savez(p, x=x, labels=np.array([{"a": 1}] * 10, dtype=object))
    elif case == "0-d array":
        np.savez(p, x=x, labels=np.int64(3))
    elif case == "string labels":
        np.savez(p, x=x, labels=np.array(["cat", "dog"] * 5))
    elif case == "truncated":
        np.savez(p, x=x)
        p.write_bytes(p.read_bytes()[:150])
    elif case == "size mismatch":  # the header claims more rows than the member holds
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr(
                "x.npy", npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (1000, 4)}, b"\0" * 64)
            )
    return p


BAD = {
    "bad zip": "not a readable .npz",
    "bad crc": "not a readable .npz file (Bad CRC-32",
    "object array": "object array",
    "0-d array": "0-d",
    "string labels": "text",
    "truncated": "not a readable .npz",
    "size mismatch": "truncated or was edited",
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_npz_is_one_data_error(tmp_path, case):
    p = write_bad(tmp_path, case)
    with pytest.raises(DataError) as exc:
        open_source(f"npz:{p}", signature=vec_signature())
    text = one_line(exc)
    assert BAD[case] in text and str(p) in text and "numpy.savez" in text


def test_malformed_npz_in_cli_verify_is_one_line_exit_2(full_bundle, tmp_path, capsys):
    """The user-facing path: no "internal error", one line, exit 2."""
    from edgeport.cli import main

    p = write_bad(tmp_path, "object array")
    rc = main(["verify", str(full_bundle), "--data", f"npz:{p}", "--backends", "onnxruntime"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "internal error" not in err and "object array" in err


def test_the_cap_is_checked_on_headers_before_any_data(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "big.npz", x=np.zeros((1000, 4), np.float32))
    monkeypatch.setenv("EDGEPORT_MAX_NPZ_BYTES", "8000")
    with pytest.raises(DataError) as exc:
        open_source(f"npz:{tmp_path / 'big.npz'}", signature=vec_signature())
    assert "16,000 bytes" in one_line(exc) and "EDGEPORT_MAX_NPZ_BYTES" in str(exc.value)


def test_labels_of_every_kind_and_detection_padding(tmp_path):
    sig = vec_signature()
    x = np.zeros((6, 4), np.float32)
    cases = {
        "class": (np.arange(6) % 3, [0, 1, 2]),
        "tokens": (np.ones((6, 5), np.int32), None),
        "mask": (np.zeros((6, 3, 3), np.uint8), None),
        "values": (np.linspace(0, 1, 12).reshape(6, 2).astype(np.float32), None),
    }
    for kind, (labels, first) in cases.items():
        np.savez(tmp_path / f"{kind}.npz", x=x, labels=labels)
        src = open_source(f"npz:{tmp_path / f'{kind}.npz'}", signature=sig)
        _, got = next(src.batches(3))
        assert src.label_kind == kind and got.shape == (3,) + labels.shape[1:]
        assert got.dtype == (labels.dtype if kind == "values" else np.int64)
        if first:
            assert got.tolist() == first
    boxes = np.zeros((6, 2, 4), np.float32)
    boxes[:, 0] = [1, 2, 5, 6]
    classes = np.full((6, 2), -1)
    classes[:, 0] = 4
    classes[0] = [1, 2]
    np.savez(tmp_path / "det.npz", x=x, boxes=boxes, classes=classes)
    src = open_source(f"npz:{tmp_path / 'det.npz'}", signature=sig)
    _, got = next(src.batches(6))
    assert src.label_kind == "boxes" and got.dtype == object and len(got) == 6
    assert got[0]["classes"].tolist() == [1, 2] and got[1]["classes"].tolist() == [4]
    assert got[1]["boxes"].dtype == np.float64 and got[1]["boxes"].tolist() == [[1, 2, 5, 6]]


# --------------------------------------------------------------------------- memory bound


def test_a_decompression_bomb_costs_a_batch_not_the_file(tmp_path):
    """512 MB of zeros in a ~0.5 MB npz, read with a limit of 10 rows: the child's peak RSS stays far
    below the decompressed size (VmHWM of a fresh interpreter; the limit leaves ~140 MB over the ~60 MB
    an interpreter with numpy and edgeport needs, and is less than half the member)."""
    rows, width = 8192, 16384  # float32: 512 MiB
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as f:
            head = {"descr": "<f4", "fortran_order": False, "shape": (rows, width)}
            f.write(npy_bytes(head, b""))
            zero = bytes(4 * width * 64)
            for _ in range(rows // 64):
                f.write(zero)
    assert path.stat().st_size < 4 << 20
    code = f"""
import re, numpy as np
from edgeport.sources.npz import NpzSource
from edgeport.specs import BATCH, Dim, Signature, TensorSpec
x = TensorSpec(name="x", dtype="float32", shape=(BATCH, {width}))
y = TensorSpec(name="y", dtype="float32", shape=(BATCH, 3), kind="logits")
src = NpzSource({str(path)!r}, Signature((x,), (y,), {{BATCH: Dim(BATCH, 1, 64)}}))
src = src.subset(np.arange(10), "eval")
feeds, _ = next(src.batches(10))
assert feeds["x"].shape == (10, {width}) and not feeds["x"].any()
# VmHWM: this process image's peak RSS (ru_maxrss can carry the forking parent's peak over)
print(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    peak_mb = int(p.stdout.split()[-1]) / 1024
    print(f"peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 200, f"peak RSS {peak_mb:.0f} MB for a 512 MB member read 10 rows at a time"


# --------------------------------------------------------------------------- golden files


def golden_bundle(tmp_path, inputs: bytes, outputs: bytes):
    """A minimal bundle (no artifacts) whose golden files are the given npz bytes."""
    import hashlib

    root = tmp_path / "bundle"
    (root / "golden").mkdir(parents=True)
    files = []
    for name, data in (("inputs", inputs), ("outputs", outputs)):
        (root / "golden" / f"{name}.npz").write_bytes(data)
        files.append(
            {"path": f"golden/{name}.npz", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        )
    sig = vec_signature().to_dict()
    manifest = {
        "schema_version": 3,
        "model": "test",
        **sig,
        "preprocessing": None,
        "labels": [],
        "artifacts": [],
        "provenance": {},
        "environment": {},
        "parity": {},
        "golden": {"inputs": "golden/inputs.npz", "outputs": "golden/outputs.npz", "files": files, "n": 2},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return load_bundle(root)


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


GOOD_IN, GOOD_OUT = {"x": np.ones((2, 4), np.float32)}, {"y": np.zeros((2, 3), np.float32)}


def test_good_golden_files_read_back(tmp_path):
    ins, outs = golden_bundle(tmp_path, npz(**GOOD_IN), npz(**GOOD_OUT)).golden()
    assert set(ins) == {"x"} and set(outs) == {"y"} and ins["x"].shape == (2, 4)


@pytest.mark.parametrize(
    "inputs, outputs, match",
    [
        ({"z": np.ones((2, 4), np.float32)}, GOOD_OUT, "lacks the input array(s) 'x'"),
        ({"x": np.float32(1.0)}, GOOD_OUT, "0-d"),
        (GOOD_IN, {"y": np.array(["a", "b"])}, "text"),
        (GOOD_IN, {"y": np.zeros((3, 3), np.float32)}, "different lengths"),
        (GOOD_IN, {"y": np.array([None, None], dtype=object)}, "object array"),
    ],
    ids=["missing key", "0-d", "strings", "lengths", "object"],
)
def test_malformed_golden_is_one_bundle_error(tmp_path, inputs, outputs, match):
    b = golden_bundle(tmp_path, npz(**inputs), npz(**outputs))
    with pytest.raises(BundleError) as exc:
        b.golden()
    text = one_line(exc)
    assert match in text and "re-export the bundle" in text and "numpy.savez" not in text


def test_golden_that_is_not_a_zip_is_one_bundle_error(tmp_path):
    b = golden_bundle(tmp_path, b"garbage, not a zip", npz(**GOOD_OUT))
    with pytest.raises(BundleError) as exc:
        b.golden()
    assert "golden/inputs.npz" in one_line(exc) and "not a readable .npz" in str(exc.value)


def test_selfcheck_with_a_malformed_golden_file_exits_2(tmp_path, capsys):
    from edgeport.cli import main

    b = golden_bundle(tmp_path, npz(x=np.float32(1.0)), npz(**GOOD_OUT))
    rc = main(["selfcheck", str(b.path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "internal error" not in err, err
    assert os.path.isdir(b.path)
