"""Small decoder-only language models: export with a KV cache to ONNX, OpenVINO and ExecuTorch,
token-by-token identity with transformers, weight-only int8/int4, generate, verify, selfcheck,
bench, tiny-lm training, and the one-line errors for bad input.

Models are tiny (the issue's random Llama: vocab 512, hidden 64, 2 layers, 4 heads, 2 KV heads; a
2-layer GPT-2), so the module runs in a couple of minutes on two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeport.bundle import parse_manifest
from edgeport.errors import BundleError, ConfigError, InputError
from test_remote import (  # noqa: F401  (cache, sshd: fixtures of the --host tests, a loopback sshd)
    cache,
    host_opts,
    sshd,
)

PROMPTS = ([1, 2, 3, 4, 5], [100, 7, 300], list(range(10, 26)))
CONTEXT = 96


def _llama(folder: Path, with_tokenizer: bool) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=0,
        eos_token_id=0,
    )
    LlamaForCausalLM(cfg).save_pretrained(folder)
    if with_tokenizer:
        from edgeport.lm.corpus import stdlib_docstrings
        from edgeport.lm.tinylm import train_tokenizer

        train_tokenizer(stdlib_docstrings("heldout")[:200], vocab_size=400).save(
            str(folder / "tokenizer.json")
        )
    return folder


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return _llama(tmp_path_factory.mktemp("llama"), with_tokenizer=True)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("gpt2")
    cfg = GPT2Config(
        vocab_size=512, n_embd=64, n_layer=2, n_head=4, n_positions=256, bos_token_id=0, eos_token_id=0
    )
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    return folder


def _export(ref: str, out: Path, **kw):
    from edgeport.lm.export import LMExportConfig, export_lm

    return export_lm(
        ref, out, config=LMExportConfig(max_context=CONTEXT, group_size=32, **kw), progress=False
    )


@pytest.fixture(scope="module")
def llama_bundle(tmp_path_factory, llama_dir):
    """ONNX and OpenVINO in fp32, int8 and int4 (ExecuTorch gets its own bundle: lowering is slow)."""
    return _export(f"hf:{llama_dir}", tmp_path_factory.mktemp("b") / "llama", formats=("onnx", "openvino"))


@pytest.fixture(scope="module")
def reference(llama_dir):
    from transformers import AutoModelForCausalLM

    from edgeport.lm.reference import greedy_tokens

    model = AutoModelForCausalLM.from_pretrained(llama_dir).eval()
    return {tuple(p): greedy_tokens(model, p, 32) for p in PROMPTS}


# --------------------------------------------------------------------------- greedy identity


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "openvino-state"])
def test_fp32_greedy_identical_to_transformers(llama_bundle, reference, backend):
    backend, _, mode = backend.partition("-")  # openvino pages its cache on cpu; -state: the stateful IR
    with llama_bundle.runner(backend, "fp32", **({"kv_cache": mode} if mode else {})) as r:
        for p in PROMPTS:
            got = r.generate(p, 32, ignore_eos=True).tokens
            assert got == reference[tuple(p)], f"{backend} fp32 greedy differs from transformers after {p}"


def test_executorch_fp32_greedy_identical(tmp_path, llama_dir, reference):
    bundle = _export(f"hf:{llama_dir}", tmp_path / "et", formats=("executorch",), weight_only=())
    art = bundle.artifact("executorch", "fp32")
    assert art.details["memory_plan_bytes"] >= art.details["kv_cache_bytes_at_max_context"] > 0
    with bundle.runner("executorch", "fp32") as r:
        for p in PROMPTS:
            assert r.generate(p, 32, ignore_eos=True).tokens == reference[tuple(p)], f"executorch after {p}"


def test_gpt2_exports_and_matches(tmp_path, gpt2_dir):
    from transformers import AutoModelForCausalLM

    from edgeport.lm.reference import greedy_tokens

    bundle = _export(f"hf:{gpt2_dir}", tmp_path / "gpt2", formats=("onnx", "openvino"), weight_only=())
    model = AutoModelForCausalLM.from_pretrained(gpt2_dir).eval()
    assert bundle.manifest.generation["architecture"]["model_type"] == "gpt2"
    for backend in ("onnxruntime", "openvino"):
        with bundle.runner(backend, "fp32") as r:
            for p in PROMPTS[:2]:
                assert r.generate(p, 24, ignore_eos=True).tokens == greedy_tokens(model, p, 24), backend


# --------------------------------------------------------------------------- manifest, quantization, verify


def test_manifest_records_the_decoder(llama_bundle):
    m = llama_bundle.manifest
    g = m.generation
    assert g["architecture"] | {"params": 0} == {
        "model_type": "llama",
        "family": "llama",
        "layers": 2,
        "heads": 4,
        "kv_heads": 2,
        "head_dim": 16,
        "hidden": 64,
        "params": 0,
        "tied_embeddings": False,
    }
    assert (g["vocab_size"], g["max_context"]) == (512, CONTEXT)
    assert g["cache"]["bytes_per_token"] == 2 * 2 * 2 * 16 * 4
    assert g["cache"]["formats"] == {"onnx": "inputs-outputs", "openvino": "state"}
    assert g["tokenizer"]["vocab_size"] == 400 and g["tokenizer"]["file"] == "checkpoint/tokenizer.json"
    assert g["quantization"]["onnx/int4"]["group_size"] == 32 and g["quantization"]["onnx/int4"]["bits"] == 4
    assert g["quantization"]["openvino/int4"]["lm_head"].startswith("int8_asym")
    assert [s.name for s in m.signature.inputs] == ["input_ids", "position_ids", "logits_index"]
    assert m.signature.outputs[0].shape == ("batch", "keep", 512)
    sizes = {a.key: a.total_bytes for a in m.artifacts}
    assert sizes["onnx/int4"] < sizes["onnx/int8"] < sizes["onnx/fp32"]
    assert sizes["openvino/int4"] < sizes["openvino/int8"] < sizes["openvino/fp32"]
    golden = g["golden"]["artifacts"]
    assert golden["onnx/fp32"]["agreement"] == 1.0 and golden["onnx/fp32"]["greedy_identical"] == 3


def test_openvino_attention_keeps_its_cache_in_place(llama_bundle):
    """The CPU plugin fuses each layer's cache read, concat, attention and write into one node."""
    import collections

    import openvino as ov

    props = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32", "INFERENCE_NUM_THREADS": 1}
    for rel in ("openvino/model.xml", "openvino/model.int4.xml"):
        compiled = ov.Core().compile_model(str(llama_bundle.path / rel), "CPU", props)
        layers = collections.Counter(
            op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ops()
        )
        assert layers["ScaledDotProductAttention"] == 2 and layers["Softmax"] == 0, (rel, dict(layers))
        assert len(compiled.inputs) == 3  # no beam_idx to feed
        masks = {  # a float additive mask: the fused attention runs twice as fast as on a boolean one
            op.input_value(3).get_element_type().get_type_name()
            for op in ov.Core().read_model(str(llama_bundle.path / rel)).get_ops()
            if op.get_type_name() == "ScaledDotProductAttention"
        }
        assert masks == {"f32"}, (rel, masks)


def test_openvino_decoder_pages_its_cache_on_cpu(llama_bundle):
    """On CPU the decoder runs OpenVINO's paged attention (openvino-genai's default there) over cache blocks
    it owns; the stateful IR is the other mode, and both give the same logits."""
    import collections

    prompt = list(range(10, 40))  # 30 tokens, then 3 more: the cache crosses no block yet, then one at 32
    for prec in ("fp32", "int4"):
        with (
            llama_bundle.runner("openvino", prec) as paged,
            llama_bundle.runner("openvino", prec, kv_cache="state") as state,
        ):
            assert paged.describe()["kv_cache"].startswith("paged (blocks of 32 positions")
            assert state.describe()["kv_cache"] == "state"
            f32 = llama_bundle.manifest.generation["cache"]["bytes_per_token"]  # what bench's limit reads
            if prec == "fp32":
                assert paged.describe()["kv_cache_bytes_per_token"] == f32
                assert state.describe()["kv_cache_bytes_per_token"] == f32
            else:  # u8 (with its scales) in both modes
                assert f32 / 4 <= paged.describe()["kv_cache_bytes_per_token"] < f32 / 2  # 16-wide heads
                assert state.describe()["kv_cache_bytes_per_token"] == f32 / 4
            layers = collections.Counter(
                op.get_rt_info()["layerType"].astype(str)
                for op in paged._compiled.get_runtime_model().get_ops()
            )
            assert layers["PagedAttention"] == 2 and layers["ScaledDotProductAttention"] == 0, dict(layers)
            out = {}
            for name, r in (("paged", paged), ("state", state)):
                r.reset()
                out[name] = [r.forward(prompt), r.forward([5, 6, 7], last_only=True)]
                assert r.position == 33
            assert out["paged"][0].shape == (30, 512) and out["paged"][1].shape == (1, 512)
            diff = max(float(np.abs(a - b).max()) for a, b in zip(out["paged"], out["state"]))
            # fp32: the same float math; int4: both keep the cache in u8, each with its own scales
            assert diff < (1e-5 if prec == "fp32" else 0.05), (prec, diff)
            paged.reset()  # a new sequence overwrites the blocks from position 0
            assert np.array_equal(paged.forward(prompt), out["paged"][0])


def test_openvino_paged_attention_falls_back_and_explains(llama_bundle, monkeypatch):
    import openvino as ov

    from edgeport.errors import BackendUnavailableError
    from edgeport.runtime import openvino_paged

    model = ov.Core().read_model(str(llama_bundle.path / "openvino/model.xml"))
    assert openvino_paged.why_not_paged(model, "cpu") == ""
    assert "cpu only" in openvino_paged.why_not_paged(model, "gpu")
    monkeypatch.setattr(openvino_paged, "why_not_paged", lambda m, d: "the IR's batch is fixed")
    with llama_bundle.runner("openvino", "fp32") as r:  # auto: the stateful IR as exported, and why
        assert r.describe()["kv_cache"] == "state (the IR's batch is fixed)"
        assert r.generate([1, 2, 3], 4, ignore_eos=True).tokens
    with pytest.raises(BackendUnavailableError, match="no paged attention: the IR's batch is fixed"):
        llama_bundle.runner("openvino", "fp32", kv_cache="paged").load()
    with pytest.raises(ConfigError, match="kv_cache must be one of auto, paged, state"):
        llama_bundle.runner("openvino", "fp32", kv_cache="ring")


def test_a_bundle_with_batch_one_baked_in_runs_stateful(tmp_path, llama_dir, monkeypatch):
    """Bundles exported before the batch was dynamic: their inputs read [?, ?], their reshapes say 1."""
    import openvino as ov

    from edgeport.errors import BackendUnavailableError
    from edgeport.lm import formats, wrappers
    from edgeport.runtime import openvino_paged

    def batch_one(arch, max_context):
        example, shapes, static = wrappers.examples(arch, max_context)
        ids, pos, idx, *kv = example
        shapes = {
            k: {a: d for a, d in v.items() if a} if isinstance(v, dict) else v for k, v in shapes.items()
        }
        shapes["past"] = tuple({2: s[2]} for s in shapes["past"])
        return (ids[:1], pos[:1], idx, *(t[:1] for t in kv)), shapes, static

    real_make_stateful = formats.make_stateful

    def batch_one_state(model, arch):  # and cache variables [1, kv_heads, ?, head_dim], as they were
        real_make_stateful(model, arch)
        for v in model.get_variables():
            info = v.get_info()
            info.data_shape = ov.PartialShape([1, *list(info.data_shape)[1:]])
            v.update(info)
        model.validate_nodes_and_infer_types()

    monkeypatch.setattr(formats, "examples", batch_one)
    monkeypatch.setattr(formats, "make_stateful", batch_one_state)
    old = _export(f"hf:{llama_dir}", tmp_path / "old", formats=("openvino",), weight_only=())
    model = ov.Core().read_model(str(old.path / "openvino/model.xml"))
    assert [str(i.get_partial_shape()) for i in model.inputs][0] == "[?,?]"  # the inputs do not tell
    assert openvino_paged.why_not_paged(model, "cpu") == "the IR fixes its batch at 1; re-export the bundle"
    for threads in (1, 2):  # never run through the paged kernel: with 1 thread that crashed the process
        with old.runner("openvino", "fp32", threads=threads) as r:
            assert r.describe()["kv_cache"] == "state (the IR fixes its batch at 1; re-export the bundle)"
            assert len(r.generate([1, 2, 3], 8, ignore_eos=True).tokens) == 8
    with pytest.raises(BackendUnavailableError, match="the IR fixes its batch at 1; re-export the bundle"):
        old.runner("openvino", "fp32", kv_cache="paged").load()


def test_tampered_generation_block_is_refused(llama_bundle, tmp_path):
    d = json.loads((llama_bundle.path / "manifest.json").read_text())
    d["generation"]["tokenizer"]["vocab_size"] = 9999
    with pytest.raises(BundleError, match="larger than the model's vocabulary"):
        parse_manifest(json.dumps(d))
    d = json.loads((llama_bundle.path / "manifest.json").read_text())
    d["generation"]["golden"]["prompts"][0]["tokens"][0] = 512
    with pytest.raises(BundleError, match=r"golden.prompts\[0\].tokens\[0\]"):
        parse_manifest(json.dumps(d))


def test_verify_reports_agreement_and_perplexity(llama_bundle):
    from edgeport.verification import verify

    report = verify(
        llama_bundle, backends=["onnxruntime", "openvino"], devices=["cpu"], limit=256, progress=False
    )
    rows = {(r["backend"], r["precision"]): r for r in report["rows"]}
    assert set(rows) == {(b, p) for b in ("onnxruntime", "openvino") for p in ("fp32", "int8", "int4")}
    for b in ("onnxruntime", "openvino"):
        assert rows[b, "fp32"]["agreement"] == 1.0 and rows[b, "fp32"]["passed"]
        assert rows[b, "fp32"]["greedy_identical"] == 3
        assert abs(rows[b, "fp32"]["perplexity_change"]) < 1e-4
        assert rows[b, "int4"]["agreement"] < 1.0  # the int4 weights really changed the model
        assert rows[b, "int4"]["perplexity"] > 1 and np.isfinite(rows[b, "int4"]["perplexity_change"])
    ref = report["reference"]["perplexity"]
    assert 300 < ref < 700, "a random model over 512 tokens is close to uniform"


def test_verify_gate_fails_and_is_overridable(llama_bundle):
    from edgeport.verification import verify

    strict = verify(
        llama_bundle,
        backends=["onnxruntime"],
        precisions=["int4"],
        limit=128,
        progress=False,
        gates={"int4_ppl_increase": 0.0},
    )
    row = strict["rows"][0]
    assert row["passed"] == (row["perplexity_change"] <= 0.0)
    loose = verify(
        llama_bundle,
        backends=["onnxruntime"],
        precisions=["int4"],
        limit=128,
        progress=False,
        gates={"int4_ppl_increase": 50},
    )
    assert loose["passed"]


# --------------------------------------------------------------------------- generate


def test_sampling_is_seeded_and_bounded(llama_bundle):
    with llama_bundle.runner("onnxruntime", "fp32") as r:
        a = r.generate([1, 2, 3], 20, temperature=1.0, top_k=40, top_p=0.9, seed=7, ignore_eos=True).tokens
        b = r.generate([1, 2, 3], 20, temperature=1.0, top_k=40, top_p=0.9, seed=7, ignore_eos=True).tokens
        c = r.generate([1, 2, 3], 20, temperature=1.0, top_k=40, top_p=0.9, seed=8, ignore_eos=True).tokens
        greedy = r.generate([1, 2, 3], 20, ignore_eos=True).tokens
        assert a == b and a != c
        assert r.generate([1, 2, 3], 20, temperature=1.0, top_k=1, seed=3, ignore_eos=True).tokens == greedy
        assert (
            r.generate([1, 2, 3], 20, temperature=2.0, top_p=1e-6, seed=3, ignore_eos=True).tokens == greedy
        )
        stop = greedy[5]
        out = r.generate([1, 2, 3], 20, stop=[stop], ignore_eos=True)
        assert out.tokens == greedy[: greedy.index(stop) + 1] and out.stop_reason == "stop_token"
        assert list(r.stream([1, 2, 3], 20, ignore_eos=True)) == greedy


def test_sampler_respects_top_k_and_top_p():
    from edgeport.runtime.generation import Sampling, sample

    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(0)
    draws = {sample(logits, Sampling(temperature=1.0, top_k=2), rng) for _ in range(300)}
    assert draws == {0, 1}
    draws = {sample(logits, Sampling(temperature=1.0, top_p=0.85), rng) for _ in range(300)}
    assert draws == {0, 1, 2}


def test_text_prompts_stream_through_the_tokenizer(llama_bundle):
    pieces = []
    with llama_bundle.runner("openvino", "int8") as r:
        out = r.generate("Return the", 12, ignore_eos=True, on_text=pieces.append)
        assert out.prompt_ids == r.tokenizer.encode("Return the")
        assert "".join(pieces) == out.text == r.tokenizer.decode(out.tokens)


def test_bad_input_is_one_line(llama_bundle):
    with llama_bundle.runner("onnxruntime", "fp32") as r:
        with pytest.raises(
            InputError, match=r"the prompt is 97 tokens, longer than the bundle's context of 96"
        ):
            r.generate([1] * 97, 1)
        with pytest.raises(
            InputError, match=r"max_new_tokens 90 after a 10-token prompt needs 100 positions"
        ):
            r.generate([1] * 10, 90)
        with pytest.raises(InputError, match=r"outside the model's vocabulary 0..511"):
            r.generate([1, 600], 2)


def test_tokenizer_that_does_not_match_is_refused(tmp_path, llama_dir):
    from edgeport.lm.corpus import stdlib_docstrings
    from edgeport.lm.source import resolve_lm
    from edgeport.lm.tinylm import train_tokenizer

    big = tmp_path / "big.json"
    train_tokenizer(stdlib_docstrings("heldout"), vocab_size=800).save(str(big))
    with pytest.raises(
        ConfigError, match=r"vocabulary of \d+ tokens but the model's is 512; they do not match"
    ):
        resolve_lm(f"hf:{llama_dir}", tokenizer=str(big))


def test_unsupported_architecture_is_one_line(tmp_path):
    from transformers import BertConfig

    BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeport.cli",
            "export",
            "--model",
            f"hf:{tmp_path}",
            "--out",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("edgeport")]
    assert len(lines) == 1 and "describes a 'bert' model" in lines[0] and "supports decoder-only" in lines[0]


# --------------------------------------------------------------------------- selfcheck, bench, light install


def test_selfcheck_passes_and_catches_a_wrong_golden(llama_bundle, tmp_path):
    import shutil

    from edgeport.device.selfcheck import selfcheck

    report = selfcheck(llama_bundle, backends=["onnxruntime", "openvino"], devices=["cpu"])
    assert report["passed"] and len(report["rows"]) == 6
    copy = tmp_path / "copy"
    shutil.copytree(llama_bundle.path, copy)
    d = json.loads((copy / "manifest.json").read_text())
    toks = d["generation"]["golden"]["prompts"][0]["tokens"]
    toks[-1] = (toks[-1] + 1) % 512
    (copy / "manifest.json").write_text(json.dumps(d))
    bad = selfcheck(copy, backends=["onnxruntime"], precisions=["fp32"])
    assert not bad["passed"] and "greedy tokens identical for 2 of 3 prompts" in bad["rows"][0]["reasons"][0]


def test_bench_reports_ttft_tokens_per_second_and_the_limit(llama_bundle):
    from edgeport.runtime.benchmark import bench
    from edgeport.runtime.lm_bench import LMBenchConfig, markdown_table

    lm = LMBenchConfig(prompt_lengths=(16, 64, 512), new_tokens=8, repeats=1)
    report = bench(llama_bundle, backends=["onnxruntime"], precisions=["fp32", "int4"], lm=lm, progress=False)
    assert report["schema"] == "edgeport.bench-lm/1" and report["bandwidth"]["gb_per_s"] > 0
    assert {(r["precision"], r["prompt_tokens"]) for r in report["rows"]} == {
        (p, n) for p in ("fp32", "int4") for n in (16, 64)
    }
    assert any("prompt 512 + 8 new tokens is past the context 96" in s["reason"] for s in report["skipped"])
    for r in report["rows"]:
        assert r["ttft_ms"] > 0 and r["decode_tokens_per_s"] > 0 and r["peak_rss_mb"] > 0
        kv = llama_bundle.manifest.generation["cache"]["bytes_per_token"] * (r["prompt_tokens"] + 4)
        art = llama_bundle.artifact("onnx", r["precision"])
        assert r["bytes_per_token"] == art.details["decode_weight_bytes_per_token"] + kv
        assert r["limit_tokens_per_s"] == pytest.approx(
            report["bandwidth"]["gb_per_s"] * 1e9 / r["bytes_per_token"]
        )
    assert "limit tok/s" in markdown_table(report)


def test_generate_runs_without_torch(llama_bundle):
    code = (
        "import sys; from edgeport.bundle import load_bundle\n"
        f"b = load_bundle({str(llama_bundle.path)!r})\n"
        "for be in ('onnxruntime', 'openvino'):\n"
        "    with b.runner(be, 'int4') as r:\n"
        "        print(r.generate('The following', 8, ignore_eos=True).tokens)\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'transformers'))]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("[") == 2


def test_cli_generate_prints_text(llama_bundle):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeport.cli",
            "generate",
            str(llama_bundle.path),
            "Return the",
            "--max-new-tokens",
            "6",
            "--backend",
            "openvino",
            "--ignore-eos",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Return the") and "6 tokens, stopped by max_new_tokens" in r.stderr


# --------------------------------------------------------------------------- tiny-lm


def test_tiny_lm_trains_and_loads(tmp_path):
    from transformers import AutoModelForCausalLM

    from edgeport.lm.train import LMTrainConfig, train_tiny_lm

    info = train_tiny_lm(
        LMTrainConfig(steps=4, batch_size=2, seq_len=32, eval_every=2, eval_tokens=256, warmup=2),
        out=tmp_path / "run",
        progress=False,
    )
    assert [h["step"] for h in info["history"]] == [2, 4]
    assert 1 < info["heldout_perplexity"] < 2 * 2048 and len(info["samples"]) == 3
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run")
    assert model.config.model_type == "llama" and model.config.vocab_size == 2048
    assert (tmp_path / "run" / "tokenizer.json").is_file()


def test_pipeline_writes_a_text_generation_report(tmp_path, llama_dir):
    from edgeport.cli import main

    run = tmp_path / "run"
    rc = main(["pipeline", "--model", f"hf:{llama_dir}", "--out", str(run), "--formats", "onnx",
               "--weight-only", "int4", "--max-context", "64", "--prompt-lengths", "16", "--new-tokens", "4",
               "--repeats", "1", "--quiet"])  # fmt: skip
    assert rc == 0
    summary = json.loads((run / "pipeline.json").read_text())
    assert summary["task"] == "text-generation" and summary["passed"], summary["gates"]
    report = (run / "report.md").read_text()
    for needle in ("Verify against PyTorch", "| onnxruntime:cpu | int4 |", "decode tok/s", "Sample generations",
                   "plots/decode.png"):  # fmt: skip
        assert needle in report, needle
    gens = json.loads((run / "generations.json").read_text())
    assert {k.split()[-1] for k in gens} == {"onnx/fp32", "onnx/int4"}
    assert all(isinstance(g["text"], str) and len(g["tokens"]) > 0 for g in gens.values())


def test_fleet_and_remote_know_text_generation_rows():
    import argparse

    from edgeport.cli.args import forwarded_options
    from edgeport.device.fleet import _table

    row = {
        "backend": "openvino",
        "device": "cpu",
        "precision": "int4",
        "prompt_tokens": 128,
        "ttft_ms": 12.5,
        "decode_tokens_per_s": 99.0,
        "fraction_of_limit": 0.4,
        "peak_rss_mb": 300.0,
        "device_name": "rpi5",
    }
    head, cells = _table("bench", [row])
    assert head[:4] == ["device", "backend", "precision", "prompt"] and cells[0][4:6] == ["12.5", "99.0"]
    args = argparse.Namespace(backends=None, precisions=None, devices=None, prompt_lengths=["16", "128"],
                              new_tokens=8, repeats=None, batch_sizes=None)  # fmt: skip
    assert forwarded_options(args, "bench") == ["--prompt-lengths=16,128", "--new-tokens=8"]


def test_bench_over_ssh(llama_bundle, sshd, cache, tmp_path):  # noqa: F811
    from edgeport.cli import main

    out = tmp_path / "remote.json"
    args = ["bench", str(llama_bundle.path), "--backends", "openvino", "--devices", "cpu", "--precisions", "int4",
            "--prompt-lengths", "16", "--new-tokens", "4", "--repeats", "1", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args + host_opts(sshd)) == 0
    report = json.loads(out.read_text())
    assert report["schema"] == "edgeport.bench-lm/1" and report["remote"]["host"] == "127.0.0.1"
    assert [(r["backend"], r["precision"], r["prompt_tokens"], r["new_tokens"]) for r in report["rows"]] == [
        ("openvino", "int4", 16, 4)
    ]
