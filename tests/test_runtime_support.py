"""Bundles for the runtime, bench and verify tests.

Built directly from a seeded model with torch.onnx / openvino / torch.jit and
written with the real ``edgeport.export.bundle`` manifest code, so these tests
do not depend on the export pipeline (which has its own tests).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

LABELS = [str(i) for i in range(10)]


def _seeded_model(seed: int):
    import torch

    from edgeport.sources.models import build_model

    torch.manual_seed(seed)
    model = build_model("mnist-mlp").eval()
    # Spread the first layer so that the softmax is far from uniform: top-1
    # classes then differ between inputs, which agreement checks need.
    with torch.no_grad():
        model.linear_stack[0].weight.mul_(8.0)
        model.linear_stack[6].weight.mul_(8.0)
    return model


def write_bundle(out: Path, *, seed: int = 0, perturb_onnx: float = 0.0, int8: bool = True) -> Path:
    """A bundle with torch, torchscript, onnx (fp32 [+ int8]) and openvino artifacts.

    ``perturb_onnx`` adds that much to one ONNX weight (a tampered-but-rehashed
    artifact that parity must catch).
    """
    import openvino as ov
    import torch
    from safetensors.torch import save_file

    from edgeport.bundle import SCHEMA_VERSION, Manifest
    from edgeport.bundle.writer import make_artifact, write_manifest
    from edgeport.preprocessing import from_preset
    from edgeport.specs import BATCH, Dim, Signature, TensorSpec

    model = _seeded_model(seed)
    out.mkdir(parents=True)
    example = torch.zeros(1, 1, 28, 28)
    (out / "checkpoint").mkdir()
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "checkpoint/model.safetensors")
    )
    arts = [make_artifact(out, "torch", "fp32", "checkpoint/model.safetensors")]

    (out / "torchscript").mkdir()
    with torch.no_grad():
        ts = torch.jit.freeze(torch.jit.trace(model, example))
    ts.save(str(out / "torchscript/model.pt"))
    arts.append(make_artifact(out, "torchscript", "fp32", "torchscript/model.pt"))

    (out / "onnx").mkdir()
    onnx_model = model
    if perturb_onnx:
        onnx_model = _seeded_model(seed)
        with torch.no_grad():
            onnx_model.linear_stack[6].bias[3] += perturb_onnx
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            onnx_model,
            (example,),
            str(out / "onnx/model.onnx"),
            input_names=["input"],
            output_names=["probs"],
            opset_version=17,
            dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}},
            dynamo=False,
        )
    arts.append(make_artifact(out, "onnx", "fp32", "onnx/model.onnx"))
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(out / "onnx/model.onnx"), str(out / "onnx/model_int8.onnx"), weight_type=QuantType.QInt8
        )
        arts.append(make_artifact(out, "onnx", "int8", "onnx/model_int8.onnx"))

    (out / "openvino").mkdir()
    ov.save_model(
        ov.convert_model(str(out / "onnx/model.onnx")),
        str(out / "openvino/model.xml"),
        compress_to_fp16=False,
    )
    arts.append(
        make_artifact(out, "openvino", "fp32", "openvino/model.xml", extra_files=["openvino/model.bin"])
    )

    pre = from_preset("mnist")
    signature = Signature(
        (TensorSpec("input", "float32", (BATCH, 1, 28, 28), layout="NCHW", value_range=pre.value_range()),),
        (TensorSpec("probs", "float32", (BATCH, 10), kind="probs"),),
        {BATCH: Dim(BATCH, 1, 4096)},
    )
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        model="mnist-mlp",
        signature=signature,
        preprocessing=pre.to_manifest(),
        labels=tuple(LABELS),
        artifacts=tuple(arts),
        provenance={},
        environment={},
        parity={},
    )
    write_manifest(out, manifest)
    return out


@pytest.fixture(scope="session")
def runtime_bundle_path(int8_bundle_path) -> Path:
    """The real export (fp32 + int8 of every format): runners are tested on what users get."""
    return int8_bundle_path


@pytest.fixture(scope="session")
def runtime_bundle(runtime_bundle_path):
    from edgeport.bundle import load_bundle

    bundle = load_bundle(runtime_bundle_path)
    bundle.trusted = True  # this test session exported it: its TorchScript may load
    return bundle


def synthetic_images(n: int = 300, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    return images, labels
