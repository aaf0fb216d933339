"""Corrupt artifacts (issue 7, check 1): >= 50 mutants of every artifact type.

(a) With hash verification on, every mutant is refused as BundleError before any
    parser sees it (the parsers are patched to fail the test if called).
(b) Forged, self-consistent bundles (the mutant rehashed into the manifest) are
    loaded and run by the matching backend in one subprocess per artifact type,
    which this file also is (``python test_mutants.py KIND ...``): every failure
    must be a typed edgeport error; a signal, a hang past 5 s per mutant or any
    other exception type fails the test.  A few forged bundles also go through the
    CLI (one line, no traceback).  The counts are printed for the closing note.
"""

from __future__ import annotations

import collections
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

N_RANDOM = 50  # truncations + bit flips per type; the targeted mutants come on top
PER_MUTANT_TIMEOUT_S = 5
SEED = 7

# kind -> (artifact format, precision, file inside the bundle or None for the main file, backend)
KINDS = {
    "torchscript": ("torchscript", "fp32", None, "torchscript"),
    "onnx": ("onnx", "fp32", None, "onnxruntime"),
    "openvino-xml": ("openvino", "fp32", None, "openvino"),
    "openvino-bin": ("openvino", "fp32", "openvino/model.bin", "openvino"),
    "safetensors": ("torch", "fp32", None, "torch"),
    "manifest": (None, None, "manifest.json", None),
}


# ------------------------------------------------------------ mutant generation


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _proto_len_fields(buf: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, int, int]]:
    """(field number, offset of the length varint, offset of the payload, payload size) of LEN fields."""
    out, i, end = [], start, len(buf) if end is None else end
    while i < end:
        key, j = _read_varint(buf, i)
        wire = key & 7
        if wire == 0:
            _, i = _read_varint(buf, j)
        elif wire == 2:
            size, k = _read_varint(buf, j)
            out.append((key >> 3, j, k, size))
            i = k + size
        elif wire in (1, 5):
            i = j + (8 if wire == 1 else 4)
        else:
            break
    return out


def _set_len(buf: bytes, at: int, new: int) -> bytes:
    _, after = _read_varint(buf, at)
    return buf[:at] + _varint(new) + buf[after:]


def _huge_onnx(data: bytes) -> list[tuple[str, bytes]]:
    graph = next(f for f in _proto_len_fields(data) if f[0] == 7)
    inits = [f for f in _proto_len_fields(data, graph[2], graph[2] + graph[3]) if f[0] == 5]
    raw = [f for f in _proto_len_fields(data, inits[0][2], inits[0][2] + inits[0][3]) if f[0] == 9]
    out = []
    for n in (2**62, 2**31 + 5, len(data)):
        out.append((f"huge graph length {n}", _set_len(data, graph[1], n)))
        out.append((f"huge raw_data length {n}", _set_len(data, raw[0][1], n)))
    return out


def _huge_zip(data: bytes) -> list[tuple[str, bytes]]:
    out = []
    ff = struct.pack("<I", 0xFFFFFFFF)
    lh = data.find(b"PK\x03\x04")
    cd = data.find(b"PK\x01\x02")
    eocd = data.rfind(b"PK\x05\x06")
    for name, at in [
        ("local header compressed size", lh + 18),
        ("local header size", lh + 22),
        ("central dir compressed size", cd + 20),
        ("central dir size", cd + 24),
        ("central dir local offset", cd + 42),
        ("eocd central dir size", eocd + 12),
        ("eocd central dir offset", eocd + 16),
    ]:
        out.append((f"huge {name}", data[:at] + ff + data[at + 4 :]))
    out.append(("eocd entry count 65535", data[: eocd + 8] + b"\xff\xff\xff\xff" + data[eocd + 12 :]))
    return out


def _huge_safetensors(data: bytes) -> list[tuple[str, bytes]]:
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + n]
    out = [
        (f"header length {v}", struct.pack("<Q", v) + data[8:]) for v in (2**63, 2**40, len(data), n + 1, 0)
    ]
    m = re.search(rb'"data_offsets":\[(\d+),(\d+)\]', header)
    if m:
        fake = b'"data_offsets":[%d,%d]' % (int(m.group(1)), 2**60)
        h2 = header.replace(m.group(0), fake, 1)
        out.append(("huge data_offsets", struct.pack("<Q", len(h2)) + h2 + data[8 + n :]))
    m = re.search(rb'"shape":\[(\d+)', header)
    if m:
        h2 = header.replace(m.group(0), b'"shape":[4294967296000', 1)
        out.append(("huge shape", struct.pack("<Q", len(h2)) + h2 + data[8 + n :]))
    return out


def _huge_xml(data: bytes) -> list[tuple[str, bytes]]:
    text = data.decode()
    out = []
    for pat, rep in [
        (r'size="\d+"', 'size="99999999999999999"'),
        (r'offset="\d+"', 'offset="18446744073709551000"'),
        (r'shape="[\d,]+"', 'shape="1000000000,1000000000,1000000000"'),
        (r'size="\d+"', 'size="-1"'),
    ]:
        out.append((f"xml {rep}", re.sub(pat, rep, text, count=1).encode()))
    return out


def _huge_manifest(data: bytes) -> list[tuple[str, bytes]]:
    d = json.loads(data)
    out = []
    for v in (10**30, 2**63, -1):
        d2 = json.loads(data)
        d2["artifacts"][0]["bytes"] = v
        out.append((f"manifest bytes {v}", json.dumps(d2).encode()))
    d2 = json.loads(data)
    d2["inputs"][0]["shape"] = ["batch", 10**9, 10**9, 10**9]
    out.append(("manifest huge input shape", json.dumps(d2).encode()))
    out.append(
        ("manifest deep nesting", b'{"schema_version": 1, "model": ' + b"[" * 100000 + b"]" * 100000 + b"}")
    )
    out.append(("manifest 1e999", data.replace(b"0.3081", b"1e999")))
    del d
    return out


HUGE = {
    "torchscript": _huge_zip,
    "onnx": _huge_onnx,
    "openvino-xml": _huge_xml,
    "openvino-bin": lambda data: [],  # its sizes live in the .xml
    "safetensors": _huge_safetensors,
    "manifest": _huge_manifest,
}
MAGIC = {
    "torchscript": [b"PK\x05\x06", b"\x80\x02}q"],
    "onnx": [b"PK\x03\x04", b"\xff\xff\xff\xff"],
    "openvino-xml": [b"{\n", b"\x08\x07\x12"],
    "openvino-bin": [b"\xff\xff\xff\x7f"],
    "safetensors": [b"\x80\x04\x95", b"PK\x03\x04"],
    "manifest": [b"[", b"\x00"],
}


def mutants(kind: str, data: bytes, others: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Deterministic mutants of ``data``: empty, truncations, bit flips, wrong magic,
    huge declared sizes, and valid files of other models (``others``)."""
    rng = random.Random(f"{SEED}-{kind}")
    n = len(data)
    out = [("empty", b""), ("truncated to 1 byte", data[:1]), ("last byte dropped", data[:-1])]
    for off in sorted(rng.sample(range(2, n - 1), N_RANDOM // 2)):
        out.append((f"truncated at {off}", data[:off]))
    # Half the flips in the first/last 1 KiB, where headers and zip directories live.
    spots = [rng.randrange(min(n, 1024)) for _ in range(N_RANDOM // 4)]
    spots += [n - 1 - rng.randrange(min(n, 1024)) for _ in range(N_RANDOM // 8)]
    spots += [rng.randrange(n) for _ in range(N_RANDOM // 2 - len(spots))]
    for pos in spots:
        bit = rng.randrange(8)
        out.append(
            (
                f"bit {bit} of byte {pos} flipped",
                data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1 :],
            )
        )
    for magic in MAGIC[kind]:
        out.append((f"wrong magic {magic[:4]!r}", magic + data[len(magic) :]))
    out += HUGE[kind](data)
    out += [(f"valid file of another model: {name}", other) for name, other in others]
    return out


def other_models(kind: str, bundle: Path, tmp: Path) -> list[tuple[str, bytes]]:
    """Valid files of a different model, for ``kind`` (needs torch, onnx, openvino)."""
    import numpy as np
    import torch

    if kind == "torchscript":
        buf = io.BytesIO()
        torch.jit.save(torch.jit.script(torch.nn.Linear(3, 4)), buf)
        return [("scripted Linear(3, 4)", buf.getvalue())]
    if kind == "onnx":
        from onnx import TensorProto, helper, numpy_helper

        w = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
        g = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            "other",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
            [w],
        )
        return [
            (
                "MatMul 3x4",
                helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
            )
        ]
    if kind == "safetensors":
        from safetensors.torch import save

        return [("Linear(3, 4) state_dict", save(torch.nn.Linear(3, 4).state_dict()))]
    if kind in ("openvino-xml", "openvino-bin"):
        suffix = ".xml" if kind == "openvino-xml" else ".bin"
        return [("fp16 IR of this model", (bundle / "openvino" / f"model.fp16{suffix}").read_bytes())]
    m = json.loads((bundle / "manifest.json").read_text())
    m["artifacts"] = [a for a in m["artifacts"] if a["format"] == "onnx"]
    return [("manifest listing only the onnx artifact", json.dumps(m).encode())]


# ------------------------------------------------------------ the subprocess harness


def _classify(exc: BaseException) -> str:
    msg = str(exc)
    for key, pattern in [
        ("hash", "does not match its manifest hash"),
        ("manifest", "manifest.json"),
        ("protobuf", "not a well-formed protobuf"),
        ("zip", "TorchScript archive"),
        ("external-data", "external data"),
        ("not-IR", "is not OpenVINO IR"),
        ("io-mismatch", "but the manifest says|inputs and .* outputs|expected f32|expected tensor"),
        ("run-failed", "failed on an input"),
        ("parser", "cannot load|cannot read|not a readable|does not fit|cannot inspect"),
    ]:
        if re.search(pattern, msg):
            return key
    return "other"


def _forge(root: Path, rel: str, data: bytes) -> None:
    """Write ``data`` to ``rel`` and make the manifest agree with it (a forged bundle)."""
    import hashlib

    (root / rel).write_bytes(data)
    if rel == "manifest.json":
        return
    m = json.loads((root / "manifest.json").read_text())
    for a in m["artifacts"]:
        for e in [a, *a.get("extra_files", [])]:
            if e.get("file", e.get("path")) == rel:
                e["sha256"], e["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (root / "manifest.json").write_text(json.dumps(m))


def _cli_check(root: Path, backend: str, image: Path, data_dir: str) -> str:
    """Run the CLI on a forged bundle; return '' if it printed one error line, else why not."""
    import contextlib

    from edgeport.cli import main

    err, out = io.StringIO(), io.StringIO()
    if backend in ("onnxruntime", "openvino"):
        argv = ["predict", str(root), str(image), "--backend", backend]
    else:
        argv = [
            "verify",
            str(root),
            "--backends",
            backend or "onnxruntime",
            "--precisions",
            "fp32",
            "--devices",
            "cpu",
            "--data-dir",
            data_dir,
            "--quiet",
        ]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(argv)
    text = err.getvalue()
    if "Traceback" in text + out.getvalue() or "internal error" in text:
        return f"rc={rc} {text!r}"
    if rc == 0:
        return ""  # the forged file loaded fine (e.g. a flipped weight bit)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if backend in ("onnxruntime", "openvino") and len(lines) != 1:
        return f"rc={rc}, {len(lines)} stderr lines: {text[:300]!r}"
    return ""


def harness(kind: str, src: Path, work: Path, data_dir: str) -> dict:
    import faulthandler

    import numpy as np

    from edgeport.bundle import load_bundle
    from edgeport.errors import EdgeportError

    fmt, precision, file, backend = KINDS[kind]
    base = load_bundle(src)
    rel = file or base.artifact(fmt, precision).file
    original = (src / rel).read_bytes()
    work.mkdir(parents=True, exist_ok=True)
    image = work / "digit.png"
    from PIL import Image

    Image.fromarray((np.arange(28 * 28).reshape(28, 28) % 255).astype(np.uint8)).save(image)
    muts = mutants(kind, original, other_models(kind, src, work))
    counts: collections.Counter = collections.Counter()
    unexpected, cli_checked, cli_bad = [], 0, []
    root = work / "bundle"
    for i, (name, data) in enumerate(muts):
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(src, root)
        _forge(root, rel, data)
        print(f"mutant {i}: {name}", file=sys.stderr, flush=True)
        faulthandler.dump_traceback_later(PER_MUTANT_TIMEOUT_S, exit=True)
        try:
            b = load_bundle(root)
            for be in [backend] if backend else ["onnxruntime", "torch"]:
                with b.runner(be, "fp32", threads=1) as r:
                    x = np.zeros((2, *b.signature.inputs[0].shape[1:]), np.float32)
                    r.run(x)
            counts["loaded"] += 1
            if os.environ.get("MUTANT_SHOW"):
                print("LOADED", name, file=sys.stderr)
            outcome = "loaded"
        except EdgeportError as exc:
            outcome = f"{type(exc).__name__}:{_classify(exc)}"
            counts[outcome] += 1
            if "\n" in str(exc):
                unexpected.append(f"{name}: multi-line message {str(exc)[:200]!r}")
        except BaseException as exc:  # noqa: BLE001 - this is what the test looks for
            counts[f"UNEXPECTED {type(exc).__name__}"] += 1
            unexpected.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
            outcome = "unexpected"
        finally:
            faulthandler.cancel_dump_traceback_later()
        if outcome != "unexpected" and (i % 12 == 5 or name.startswith("valid file")):
            faulthandler.dump_traceback_later(4 * PER_MUTANT_TIMEOUT_S, exit=True)
            why = _cli_check(root, backend, image, data_dir)
            faulthandler.cancel_dump_traceback_later()
            cli_checked += 1
            if why:
                cli_bad.append(f"{name}: {why}")
    return {
        "kind": kind,
        "file": rel,
        "tried": len(muts),
        "outcomes": dict(counts),
        "unexpected": unexpected,
        "cli_checked": cli_checked,
        "cli_bad": cli_bad,
    }


if __name__ == "__main__":
    kind, src, work, data_dir = sys.argv[1:5]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = harness(kind, Path(src), Path(work), data_dir)
    print("RESULT " + json.dumps(result), flush=True)
    sys.exit(0)


# ------------------------------------------------------------ the tests

import pytest  # noqa: E402

import export_fixtures as fx  # noqa: E402
from edgeport.bundle import load_bundle  # noqa: E402
from edgeport.errors import BundleError  # noqa: E402


@pytest.fixture(scope="module")
def full_bundle(tmp_path_factory, tiny_run, synthetic_mnist):
    return fx.full_bundle(tmp_path_factory, tiny_run, synthetic_mnist)


def _no_parser(monkeypatch):
    """Make every model parser fail the test if called."""
    import safetensors.torch
    import torch

    from edgeport.runtime import onnxruntime_backend, openvino_backend

    def boom(*a, **k):
        raise AssertionError("a parser was called on an unverified file")

    monkeypatch.setattr(onnxruntime_backend.ort, "InferenceSession", boom)
    real_core = openvino_backend.core()

    class NoReadCore:
        available_devices = real_core.available_devices
        read_model = compile_model = staticmethod(boom)

    monkeypatch.setattr(openvino_backend, "core", NoReadCore)
    monkeypatch.setattr(torch.jit, "load", boom)
    monkeypatch.setattr(safetensors.torch, "load", boom)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "manifest"])
def test_every_mutant_is_refused_by_hash_before_parsing(kind, full_bundle, tmp_path, monkeypatch):
    fmt, precision, file, backend = KINDS[kind]
    root = fx.bundle_copy(full_bundle, tmp_path)
    verified = load_bundle(root)  # loaded before the swap: the runner must re-check
    verified.trusted = True  # so the TorchScript runner gets as far as its hash check
    rel = file or verified.artifact(fmt, precision).file
    original = (root / rel).read_bytes()
    muts = mutants(kind, original, other_models(kind, full_bundle, tmp_path))
    assert len(muts) >= 50
    _no_parser(monkeypatch)
    for name, data in muts:
        (root / rel).write_bytes(data)
        with pytest.raises(
            BundleError, match="does not match its manifest hash|but its manifest says"
        ) as info:
            load_bundle(root)
        assert rel in str(info.value) and "\n" not in str(info.value), name
        # the loaded bundle holds its verified files open: a rewrite in place is caught by size or hash
        with pytest.raises(
            BundleError,
            match="does not match its manifest hash|but its manifest says|changed size since it was opened",
        ):
            verified.runner(backend, precision, threads=1).load()
    print(f"\nmutants[{kind}]: {len(muts)} tried, {len(muts)} rejected by hash before any parser ran")


def test_every_manifest_mutant_is_a_bundle_error_or_a_valid_manifest(full_bundle, tmp_path, monkeypatch):
    """The manifest has no hash of its own: a mutant either fails to parse as BundleError or
    is a valid manifest whose every listed file still matches its hash."""
    root = fx.bundle_copy(full_bundle, tmp_path)
    original = (root / "manifest.json").read_bytes()
    muts = mutants("manifest", original, other_models("manifest", full_bundle, tmp_path))
    assert len(muts) >= 50
    _no_parser(monkeypatch)
    counts: collections.Counter = collections.Counter()
    for name, data in muts:
        (root / "manifest.json").write_bytes(data)
        try:
            load_bundle(root)
            counts["valid manifest, all hashes match"] += 1
        except BundleError as exc:
            assert "\n" not in str(exc), name
            counts[_classify(exc)] += 1
    print(f"\nmutants[manifest]: {len(muts)} tried: {dict(counts)}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_forged_mutants_fail_typed_in_a_subprocess(kind, full_bundle, synthetic_mnist, tmp_path):
    env = dict(
        os.environ,
        EDGEPORT_TRUST_MODEL_CODE="1",  # forged TorchScript must get past the trust rule, to its loader
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [sys.executable, __file__, kind, str(full_bundle), str(tmp_path / "work"), str(synthetic_mnist)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    last = [ln for ln in proc.stderr.splitlines() if ln.startswith("mutant ")][-1:]
    assert proc.returncode == 0, (
        f"harness for {kind} died with rc {proc.returncode} (signal or >{PER_MUTANT_TIMEOUT_S}s hang) "
        f"at {last}: {proc.stderr[-2000:]}"
    )
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    print(
        f"\nforged mutants[{kind}] ({result['file']}): {result['tried']} tried: {result['outcomes']}; "
        f"CLI checked {result['cli_checked']}"
    )
    assert result["tried"] >= 50
    assert not result["unexpected"], result["unexpected"]
    assert not result["cli_bad"], result["cli_bad"]
