"""int8 that holds: a planted sensitive layer is found first and kept float on every format, and what
export accepts, verify passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeport.config import CalibrationConfig, ExportConfig
from edgeport.export import sensitivity
from edgeport.export.api import export
from edgeport.runtime.verify import format_table, verify


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from safetensors.torch import save_file

    import user_models

    path = tmp_path_factory.mktemp("planted") / "planted.safetensors"
    save_file({k: v.contiguous() for k, v in user_models.planted().state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import user_models

    path = tmp_path_factory.mktemp("data") / "x.npz"
    np.savez(path, x=user_models.planted_inputs(700))
    return f"npz:{path}"


def test_sensitivity_ranks_the_planted_layer_first():
    import user_models

    model = user_models.planted().eval()
    x = torch.from_numpy(user_models.planted_inputs(256, seed=1))
    ranked = sensitivity.rank(model, [(x[:128],)], (x[128:],))
    assert [L.name for L in ranked][0] == "b", [(L.name, L.sqnr_db) for L in ranked]
    assert ranked[0].sqnr_db < 10 < min(L.sqnr_db for L in ranked[1:])
    assert sensitivity.float_share(ranked, ["b"]) == pytest.approx(512 * 16 / (64 * 512 + 512 * 16 + 16 * 10))


def test_the_fallback_keeps_the_planted_layer_float_on_every_format_and_verify_agrees(
    weights, data, tmp_path
):
    b = export(
        model_ref="user_models:planted",
        weights=weights,
        inputs=["x:1,64"],
        config=ExportConfig(int8=True, formats=("torchscript", "onnx", "openvino", "executorch")),
        calibration=CalibrationConfig(size=200, method="minmax"),
        data=data,
        out=tmp_path / "b",
        progress=False,
    )
    cal = b.manifest.calibration
    assert [f["layer"] for f in cal["float_layers"]] == ["b"], cal["fallback"]
    step = cal["fallback"][0]
    assert step["layer"] == "b" and all(f["within_gate"] for f in step["formats"].values())
    int8 = [a for a in b.artifacts if a.precision == "int8"]
    assert {a.format for a in int8} == {"torchscript", "onnx", "openvino", "executorch"} and not b.failures
    for a in int8:
        d = a.details
        assert d["float_modules"] == ["b"] and [f["layer"] for f in d["float_layers"]] == ["b"], a.key
        layers = d["layers"]
        assert layers["int8_layers"] == 2 and layers["weighted_layers"] == 3, (a.key, layers)
        assert d["acceptance"]["passed"] and d["acceptance"]["n"] == 500 - 0, a.key
    report = verify(b, data=data, precisions=["int8"], progress=False)  # the same eval split
    assert report["passed"], format_table(report)
    for row in report["rows"]:
        accepted = b.artifact(row["format"], "int8").details["acceptance"]["metrics"]["agreement"]
        assert row["agreement"] == pytest.approx(accepted), row["format"]  # export judged what verify judges
