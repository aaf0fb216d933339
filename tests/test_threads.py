"""Check 5 of issue 7: runners shared between threads.

8 threads x 1,000 batch-1 runs on one runner per backend x precision of an
exported bundle (fp32 + int8) give outputs identical to a single-threaded run,
with zero errors; 4 threads loading the same bundle at once all succeed.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edgeport.runtime import available_backends
from edgeport.runtime.registry import BACKEND_FORMAT

N_THREADS = 8
RUNS_PER_THREAD = 1000
N_INPUTS = 16


@pytest.fixture(scope="session")
def int8_bundle(int8_bundle_path):
    from edgeport.bundle import load_bundle

    bundle = load_bundle(int8_bundle_path)
    bundle.trusted = True  # this test session exported it
    return bundle


def _combos() -> list:
    return [
        pytest.param((b, p), id=f"{b}-{p}")
        for b in available_backends()
        for p in (("fp32",) if b == "torch" else ("fp32", "int8"))
    ]


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.uniform(-0.5, 2.8, size=(1, 1, 28, 28)).astype(np.float32) for _ in range(N_INPUTS)]


def _in_threads(n: int, work) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def wrapped(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize("combo", _combos())
def test_shared_runner_8_threads_x_1000(int8_bundle, combo):
    backend, precision = combo
    if (BACKEND_FORMAT[backend], precision) not in {(a.format, a.precision) for a in int8_bundle.artifacts}:
        pytest.skip(f"bundle has no {BACKEND_FORMAT[backend]}/{precision} artifact")
    inputs = _inputs()
    with int8_bundle.runner(backend, precision) as runner:
        expected = [runner.run(x) for x in inputs]
        mismatches = [0] * N_THREADS
        done = [0] * N_THREADS

        def work(i: int) -> None:
            for k in range(RUNS_PER_THREAD):
                j = (i * 3 + k) % N_INPUTS
                if not np.array_equal(runner.run(inputs[j]), expected[j]):
                    mismatches[i] += 1
                done[i] += 1

        errors = _in_threads(N_THREADS, work)
    total = N_THREADS * RUNS_PER_THREAD
    assert not errors, f"{len(errors)} thread(s) failed: {errors[:3]!r}"
    assert sum(done) == total
    assert sum(mismatches) == 0, (
        f"{sum(mismatches)} of {total} threaded runs differ from single-threaded runs"
    )


def test_4_threads_load_the_same_bundle_at_once(int8_bundle_path):
    from edgeport.bundle import load_bundle

    x = _inputs()[0]
    with load_bundle(int8_bundle_path).runner("onnxruntime") as r:
        expected = r.run(x)
    backends = [b for b in ("onnxruntime", "openvino", "torchscript", "torch") if b in available_backends()]
    outputs: dict[tuple[int, str], np.ndarray] = {}

    def work(i: int) -> None:
        bundle = load_bundle(int8_bundle_path)
        bundle.trusted = True
        for backend in backends:
            with bundle.runner(backend) as runner:
                outputs[(i, backend)] = runner.run(x)

    errors = _in_threads(4, work)
    assert not errors, f"{len(errors)} of 4 concurrent loads failed: {errors[:3]!r}"
    assert len(outputs) == 4 * len(backends)
    for key, y in outputs.items():
        np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5, err_msg=f"{key}: fp32 atol 1e-5")
