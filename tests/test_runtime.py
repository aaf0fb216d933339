"""The runner contract, run against every backend x precision x usable device.

An unusable device is one skipped test that says why (after checking that asking for it raises
that reason), not one skip per contract test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from edgeport.errors import BackendUnavailableError, BundleError, ConfigError, InputError
from edgeport.runtime import available_backends, list_devices
from edgeport.runtime.registry import BACKEND_FORMAT
from test_runtime_support import runtime_bundle, runtime_bundle_path, write_bundle  # noqa: F401

PRECISIONS = ("fp32", "int8")


def _combos():
    params = []
    for row in list_devices():
        if not row["usable"]:
            continue  # test_unusable_device_says_why: one skip per device
        precisions = PRECISIONS if row["backend"] != "torch" else ("fp32",)  # torch runs the checkpoint
        for precision in precisions:
            marks = [pytest.mark.cuda] if row["device"] == "cuda" else []
            params.append(
                pytest.param(
                    (row["backend"], precision, row["device"]),
                    marks=marks,
                    id=f"{row['backend']}-{precision}-{row['device']}",
                )
            )
    return params


def _unusable():
    return [
        pytest.param(row, id=f"{row['backend']}-{row['device']}")
        for row in list_devices()
        if not row["usable"]
    ] or [pytest.param(None, id="none")]


@pytest.mark.parametrize("row", _unusable())
def test_unusable_device_says_why(runtime_bundle, row):  # noqa: F811
    """Each device this machine lacks: asking for it raises its reason; then one skip names it."""
    if row is None:  # every device is usable here
        assert all(r["usable"] for r in list_devices())
        return
    assert row["reason"]
    with pytest.raises(BackendUnavailableError) as info:
        runtime_bundle.runner(row["backend"], device=row["device"]).load()
    assert row["reason"][:60] in str(info.value)
    pytest.skip(f"{row['backend']}:{row['device']} unusable here: {row['reason']}")


@pytest.fixture(params=_combos())
def combo(request, runtime_bundle):  # noqa: F811
    backend, precision, device = request.param
    have = {(a.format, a.precision) for a in runtime_bundle.artifacts}
    if (BACKEND_FORMAT[backend], precision) not in have:
        pytest.skip(f"test bundle has no {BACKEND_FORMAT[backend]}/{precision} artifact")
    return backend, precision, device


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 2.8, size=(n, 1, 28, 28)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(runtime_bundle):  # noqa: F811
    with runtime_bundle.runner("torch") as r:
        return r.run(_x(6))


class TestRunnerContract:
    def test_lifecycle_and_output(self, runtime_bundle, combo, reference):  # noqa: F811
        backend, precision, device = combo
        runner = runtime_bundle.runner(backend, precision, device)
        assert not runner.is_loaded
        with runner:
            assert runner.is_loaded
            y = runner.run(_x(6))
            assert y.shape == (6, 10) and y.dtype == np.float32
            np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-3)
            if precision == "fp32":
                assert np.all(np.abs(y - reference) <= 1e-5 + 1e-5 * np.abs(reference)), (
                    "fp32 atol 1e-5 + 1e-5*|ref|"
                )
            assert runner.run(_x(1)).shape == (1, 10)
        assert not runner.is_loaded
        with pytest.raises(ConfigError, match="closed"):
            runner.run(_x(1))
        runner.close()  # closing twice is harmless

    def test_run_loads_on_first_use(self, runtime_bundle, combo):  # noqa: F811
        runner = runtime_bundle.runner(*combo)
        try:
            assert runner.run(_x(2)).shape == (2, 10)
        finally:
            runner.close()

    @pytest.mark.parametrize(
        "bad, match",
        [
            ([[0.0]], "numpy array"),
            (np.zeros((2, 1, 28, 28), np.float64), "dtype"),
            (np.zeros((2, 1, 28, 28), np.uint8), "dtype"),
            (np.zeros((1, 28, 28), np.float32), "rank"),
            (np.zeros((2, 1, 28, 27), np.float32), "shape"),
            (np.zeros((2, 3, 28, 28), np.float32), "shape"),
            (np.zeros((0, 1, 28, 28), np.float32), "outside 1..4"),
            (np.full((2, 1, 28, 28), np.nan, np.float32), "NaN or infinite"),
            (
                np.where(np.arange(784).reshape(1, 1, 28, 28) == 5, np.inf, 0).astype(np.float32),
                "NaN or infinite",
            ),
            (np.zeros((5, 1, 28, 28), np.float32), "outside 1..4"),
            (
                {"image": np.zeros((2, 1, 28, 28), np.float32)},
                "missing input.*'input'.*unknown input.*'image'",
            ),
            ({"input": np.zeros((2, 1, 28, 28), np.float32), "extra": np.zeros(1)}, "unknown input.*'extra'"),
            (np.zeros((2, 28, 28, 1), np.uint8), "dtype uint8.*runner.predict"),
        ],
        ids=[
            "list",
            "float64",
            "uint8",
            "rank3",
            "width",
            "channels",
            "empty",
            "nan",
            "inf",
            "too-large",
            "wrong-name",
            "extra-name",
            "nhwc-uint8",
        ],
    )
    def test_bad_input(self, runtime_bundle, combo, bad, match):  # noqa: F811
        with runtime_bundle.runner(*combo, max_batch=4) as runner:
            with pytest.raises(InputError, match=match):
                runner.run(bad)
            with pytest.raises(InputError):
                runner.prepare(bad)
            assert runner.run(_x(4)).shape == (4, 10)  # still usable afterwards

    def test_predict_any_batch(self, runtime_bundle, combo):  # noqa: F811
        images = np.random.default_rng(1).integers(0, 256, size=(9, 28, 28), dtype=np.uint8)
        with runtime_bundle.runner(*combo, max_batch=4) as runner:
            labels, probs = runner.predict(images)
            assert labels.shape == (9,) and probs.shape == (9, 10)
            np.testing.assert_array_equal(labels, probs.argmax(1))
            np.testing.assert_array_equal(
                probs,
                runner.run(runtime_bundle.preprocessing.apply(images)[:4]).tolist()
                + runner.run(runtime_bundle.preprocessing.apply(images)[4:8]).tolist()
                + runner.run(runtime_bundle.preprocessing.apply(images)[8:]).tolist(),
            )
            assert runner.labels == [str(i) for i in range(10)]
            with pytest.raises(InputError):
                runner.predict(np.zeros((0, 28, 28), np.uint8))
            with pytest.raises(InputError, match="shape"):  # an RGB batch is not reshaped to fit
                runner.predict(np.zeros((2, 224, 224, 3), np.uint8))

    def test_prepared_matches_run(self, runtime_bundle, combo):  # noqa: F811
        x = _x(3, seed=5)
        with runtime_bundle.runner(*combo) as runner:
            prepared = runner.prepare(x)
            x[:] = 0  # prepare copied the input: later changes to x do not leak in
            for _ in range(3):
                prepared()
            out = prepared.fetch()
            prepared.release()
            assert set(out) == {"probs"}
            np.testing.assert_array_equal(out["probs"], runner.run(_x(3, seed=5)))

    def test_threads_give_identical_outputs(self, runtime_bundle, combo):  # noqa: F811
        inputs = [_x(2, seed=s) for s in range(8)]
        with runtime_bundle.runner(*combo) as runner:
            expected = [runner.run(x) for x in inputs]
            errors: list[BaseException] = []
            mismatches = [0] * 8

            def work(i: int) -> None:
                try:
                    for k in range(200):
                        j = (i + k) % 8
                        if not np.array_equal(runner.run(inputs[j]), expected[j]):
                            mismatches[i] += 1
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert not errors, errors[:3]
        assert sum(mismatches) == 0, (
            f"{sum(mismatches)} of 1600 threaded runs differ from single-threaded runs"
        )


# ---------------------------------------------------------------------------- registry
def test_registry_lists_every_backend_and_device():
    rows = list_devices()
    assert {r["backend"] for r in rows} == {"torch", "torchscript", "onnxruntime", "openvino", "executorch"}
    for r in rows:
        assert set(r) == {"backend", "device", "usable", "reason"}
        assert r["usable"] or r["reason"], r
    assert any(r["backend"] == "openvino" and r["device"] == "auto" for r in rows)
    assert "onnxruntime" in available_backends()


def test_unknown_names(runtime_bundle):  # noqa: F811
    with pytest.raises(ConfigError, match="unknown backend"):
        runtime_bundle.runner("tensorrt")
    with pytest.raises(ConfigError, match="no device"):
        runtime_bundle.runner("onnxruntime", device="tpu")
    with pytest.raises(BundleError, match="no openvino/fp16"):
        runtime_bundle.runner("openvino", "fp16")
    with pytest.raises(ConfigError, match="threads"):
        runtime_bundle.runner("onnxruntime", threads=0)


def test_tampered_artifact_is_refused_at_load(tmp_path):
    from edgeport.bundle import load_bundle

    path = write_bundle(tmp_path / "b", int8=False)
    bundle = load_bundle(path)
    onnx_file = path / "onnx/model.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="onnx/model.onnx"):
        bundle.runner("onnxruntime").load()


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_cuda_runner(runtime_bundle, backend):  # noqa: F811
    row = next(r for r in list_devices([backend]) if r["device"] == "cuda")
    if not row["usable"]:
        pytest.skip(f"{backend} cuda unusable here: {row['reason']}")
    with runtime_bundle.runner(backend, device="cuda") as gpu, runtime_bundle.runner(backend) as cpu:
        np.testing.assert_allclose(gpu.run(_x(8)), cpu.run(_x(8)), atol=1e-5, rtol=1e-4)


def test_torchscript_int8_is_refused_on_cuda_with_the_reason(runtime_bundle, monkeypatch):  # noqa: F811
    """torch.jit.load of the int8 archive onto cuda ends the process (segfault, seen on an H200): the plan
    skips that row with the reason and keeps fp32 on cuda; asking for it directly is a one-line error."""
    from edgeport.errors import BackendUnavailableError
    from edgeport.runtime.plan import select_runs
    from edgeport.runtime.torchscript_backend import TorchScriptRunner

    monkeypatch.setattr(TorchScriptRunner, "device_status", classmethod(lambda cls, device: (True, "")))
    runs, skipped = select_runs(runtime_bundle, backends=["torchscript"], devices=["cuda"])
    assert runs == [("torchscript", "fp32", "cuda")]
    assert [(s["precision"], "cpu only" in s["reason"]) for s in skipped] == [("int8", True)]
    with pytest.raises(BackendUnavailableError, match="TorchScript int8 runs on cpu only"):
        runtime_bundle.runner("torchscript", "int8", device="cuda")
    runs, _ = select_runs(runtime_bundle, backends=["torchscript"], devices=["cpu"])
    assert sorted(runs) == [("torchscript", "fp32", "cpu"), ("torchscript", "int8", "cpu")]


def test_light_runtime_never_imports_torch(runtime_bundle_path):  # noqa: F811
    code = f"""
import sys
import numpy as np
import edgeport.runtime
from edgeport.bundle import load_bundle
b = load_bundle({str(runtime_bundle_path)!r})
with b.runner("onnxruntime") as r:
    assert r.run(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    r.predict(np.zeros((3, 28, 28), np.uint8))
with b.runner("openvino") as r:
    assert r.run(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
edgeport.runtime.list_devices(["onnxruntime", "openvino"])
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not bad, bad
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
