"""Runner inputs under hypothesis (issue 7, check 8 and its fuzz acceptance item).

Any shape, dtype, value (NaN, inf, huge), batch size or non-array object fed to
``Runner.run``, ``Runner.prepare`` or ``Runner.predict`` either gives a valid
output or raises :class:`InputError`; nothing else.  At least 500 examples in all.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeport.errors import InputError
from edgeport.runtime import available_backends
from test_runtime_support import runtime_bundle, runtime_bundle_path  # noqa: F401

MAX_BATCH = 32
# 5 runners (4 backends fp32 + onnxruntime int8) x 2 tests x 80 = 800 examples, ~6 s in all.
EXAMPLES = 80

DTYPES = st.sampled_from(
    [
        np.float32,
        np.float32,
        np.float32,
        np.float64,
        np.float16,
        np.uint8,
        np.int8,
        np.int64,
        np.bool_,
        np.complex64,
        np.dtype(">f4"),
    ]
)
DIM = st.sampled_from([0, 1, 2, 3, 27, 28, 29])
# Valid inner shape most of the time, so batch sizes and values get exercised too.
SHAPES = st.one_of(
    st.tuples(st.integers(0, MAX_BATCH + 3), st.just(1), st.just(28), st.just(28)),
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3),
    st.tuples(DIM, DIM, DIM, DIM),
    st.tuples(DIM, DIM, DIM),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(DTYPES))
    shape = draw(SHAPES)
    if int(np.prod(shape)) > 40_000:
        shape = (1, 1, 28, 28)
    fill = draw(st.sampled_from(["random", "special", "elements"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.uniform(-3, 3, size=shape).astype(dtype) if dtype.kind != "b" else rng.random(shape) > 0.5
    if fill == "special" and x.size and dtype.kind == "f":
        flat = x.reshape(-1)
        flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 3e38, -0.0]))
    elif fill == "elements" and 0 < x.size <= 64 and dtype.kind == "f":
        x = np.array(draw(st.lists(FLOATS, min_size=x.size, max_size=x.size)), dtype=dtype).reshape(shape)
    if draw(st.booleans()) and x.ndim >= 2:
        x = np.asfortranarray(x)  # non-C-contiguous input
    return x


NON_ARRAYS = st.one_of(
    st.none(),
    st.floats(),
    st.text(max_size=5),
    st.lists(st.floats(), max_size=4),
    st.lists(st.lists(st.integers(0, 255), max_size=3), max_size=3),  # ragged or not
)
INPUTS = st.one_of(arrays(), arrays(), arrays(), NON_ARRAYS)


def _combos():
    out = [(b, "fp32") for b in available_backends()]
    if "onnxruntime" in available_backends():
        out.append(("onnxruntime", "int8"))
    return [pytest.param(c, id=f"{c[0]}-{c[1]}") for c in out]


@pytest.fixture(scope="module", params=_combos())
def runner(request, runtime_bundle):  # noqa: F811
    backend, precision = request.param
    r = runtime_bundle.runner(backend, precision, max_batch=MAX_BATCH).load()
    yield r
    r.close()


def _check_output(y, n: int) -> None:
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (n, 10), (
        type(y),
        getattr(y, "shape", None),
    )
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-3)


SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


@SETTINGS
@given(x=INPUTS)
def test_run_and_prepare_fuzz(runner, x):
    try:
        y = runner.run(x)
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc)
        with pytest.raises(InputError):
            runner.prepare(x)
        return
    _check_output(y, len(x))
    p = runner.prepare(x)
    p()
    np.testing.assert_array_equal(p.fetch()["probs"], y)
    p.release()


@SETTINGS
@given(images=INPUTS)
def test_predict_fuzz(runner, images):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # float overflow on huge values is then refused
        try:
            labels, probs = runner.predict(images)
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc)
            return
    n = len(labels)
    assert n >= 1 and labels.shape == (n,)
    _check_output(probs, n)


def test_runner_still_works_after_fuzzing(runner):
    x = np.zeros((MAX_BATCH, 1, 28, 28), np.float32)
    _check_output(runner.run(x), MAX_BATCH)
