"""int8 that holds, measured: a MobileNetV3-small and a small transformer encoder, trained briefly here,
exported with --int8 to every format, then verified on the same eval data.

For each model and format it prints: the fp32 metric, the int8 metric before the fallback (the best
candidate) and after it, the layers kept float (and the share of convolutions), int8/fp32 speed at
batch 1 and 32 (from the export's own timing), and whether `edgeport verify` on the eval data agrees
with what export accepted.  Targets (issue "int8 that holds"): MobileNetV3-small int8 within 0.5 points
of fp32 on every format with at most 10% of its convolutions float, OpenVINO int8 >= 1.3x fp32 at batch
32; the encoder within its gates on ONNX and OpenVINO, float layers named.

MobileNetV3-small runs at 224 px by default (its ImageNet size; the 64x64 photos are upsampled): at
64 px a batch of 32 is so little work that OpenVINO's int8 gain is lost in per-call overhead (0.96x
there, 2.0x at 224 px).

Usage: python benchmarks/int8_accuracy.py --data-dir MNIST [--work DIR] [--models mnv3,encoder]
           [--epochs N] [--image-size PX]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
EDGEPORT = str(Path(sys.executable).with_name("edgeport"))


def run(*argv: str, env=None) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    res = subprocess.run([EDGEPORT, *argv], capture_output=True, text=True, env=env)
    print(f"  edgeport {argv[0]}: exit {res.returncode} in {time.perf_counter() - t0:.0f} s", flush=True)
    if res.returncode not in (0, 3):
        print(res.stderr[-3000:])
    return res


# --------------------------------------------------------------------------- MobileNetV3-small


def steps_at(size: int) -> dict:
    """rgb_pipeline's preprocessing with the resize and crop at `size` pixels (the photos are 64x64)."""
    from rgb_pipeline import STEPS

    out = json.loads(json.dumps(STEPS))
    for st in out["steps"]:
        if st["op"] == "resize":
            st["size"] = size
        elif st["op"] == "center_crop":
            st["size"] = [size, size]
    return out


def mnv3(work: Path, data_dir: str, epochs: int, size: int = 224) -> dict:
    import torch
    import torchvision
    from rgb_pipeline import write_folder
    from safetensors.torch import save_file
    from torchvision import datasets

    from edgeport.preprocessing import Preprocessing
    from edgeport.sources.mnist import load_mnist
    from edgeport.sources.transforms import to_torchvision

    d = load_mnist(data_dir)
    folders = {"train": (d.train_images, d.train_labels, 500, 1), "calib": (d.val_images, d.val_labels, 40, 2),
               "photos": (d.test_images, d.test_labels, 200, 3)}  # fmt: skip
    for name, (x, y, per, seed) in folders.items():
        if not (work / name).is_dir():
            print(f"  writing {name}: {write_folder(work / name, x, y, per, seed)} images", flush=True)
    preprocess = steps_at(size)
    (work / "steps.json").write_text(json.dumps(preprocess))
    weights = work / f"mnv3-{size}px.safetensors"
    if not weights.is_file():
        torch.manual_seed(0)
        model = torchvision.models.mobilenet_v3_small(num_classes=10)
        tf = to_torchvision(Preprocessing("input", tuple(preprocess["steps"])))
        ds = datasets.ImageFolder(work / "train", transform=lambda img: torch.from_numpy(tf(np.asarray(img))))
        loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=0)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        steps = epochs * len(loader)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
        t0 = time.perf_counter()
        for epoch in range(epochs):
            model.train()
            for x, y in loader:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                sched.step()
            print(f"  epoch {epoch + 1}/{epochs} ({time.perf_counter() - t0:.0f} s)", flush=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    marker = work / f"mnv3-{size}px.bn-recalibrated"
    if not marker.is_file():
        # torchvision's MobileNetV3 keeps BatchNorm statistics with momentum 0.01: after a few hundred
        # steps they are still mostly their initial values and eval mode scores at chance.  One pass
        # over the training images with a cumulative average gives the statistics the weights expect.
        from safetensors.torch import load_file

        model = torchvision.models.mobilenet_v3_small(num_classes=10)
        model.load_state_dict(load_file(str(weights)))
        tf = to_torchvision(Preprocessing("input", tuple(preprocess["steps"])))
        load = lambda folder, shuffle: torch.utils.data.DataLoader(  # noqa: E731
            datasets.ImageFolder(folder, transform=lambda img: torch.from_numpy(tf(np.asarray(img)))),
            batch_size=128, shuffle=shuffle, num_workers=0)  # fmt: skip
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        model.train()
        with torch.no_grad():
            for x, _ in load(work / "train", True):
                model(x)
        model.eval()
        hits = n = 0
        with torch.no_grad():
            for x, y in load(work / "photos", False):
                hits += int((model(x).argmax(1) == y).sum())
                n += len(y)
        print(f"  BatchNorm statistics recomputed; PyTorch accuracy on the eval folder {hits / n * 100:.2f}%")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
        marker.write_text("1\n")
    bundle = work / "mnv3-bundle"
    res = run("export", "--model", "torchvision:mobilenet_v3_small", "--model-arg", "num_classes=10",
              "--weights", str(weights), "--input-shape", f"1,3,{size},{size}", "--preprocess", str(work / "steps.json"),
              "--calibration-data", f"imagefolder:{work / 'calib'}", "--eval-data", f"imagefolder:{work / 'photos'}",
              "--int8", "--out", str(bundle), "--force", "--quiet")  # fmt: skip
    ver = run("verify", str(bundle), "--data", f"imagefolder:{work / 'photos'}", "--quiet", "--trust-model-code",
              "--out", str(work / "mnv3-verify.json"), "--force")  # fmt: skip
    return summarize("MobileNetV3-small", bundle, work / "mnv3-verify.json", res, ver, "accuracy")


# --------------------------------------------------------------------------- transformer encoder


def encoder_data(n: int, seed: int, seq: int = 24, vocab: int = 40):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(n, seq)).astype(np.int64)
    tags = (ids + np.roll(ids, 1, axis=1)) % 5  # needs the previous token: attention must work
    tags[:, 0] = ids[:, 0] % 5
    return ids, tags.astype(np.int64)


def encoder(work: Path, epochs: int) -> dict:
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(ROOT / "examples"))
    import models

    ids, tags = encoder_data(12000, 0)
    eval_ids, eval_tags = encoder_data(1500, 1)
    np.savez(work / "enc-calib.npz", ids=ids[:600], labels=tags[:600])
    np.savez(work / "enc-eval.npz", ids=eval_ids, labels=eval_tags)
    weights = work / "encoder.safetensors"
    if not weights.is_file():
        torch.manual_seed(0)
        model = models.text_tagger()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
        x, y = torch.from_numpy(ids), torch.from_numpy(tags)
        for epoch in range(epochs):
            model.train()
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 128):
                b = perm[i : i + 128]
                opt.zero_grad()
                logits = model(x[b])
                torch.nn.functional.cross_entropy(logits.reshape(-1, 5), y[b].reshape(-1)).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                acc = (model(torch.from_numpy(eval_ids)).argmax(-1).numpy() == eval_tags).mean()
            print(f"  epoch {epoch + 1}/{epochs}: token accuracy {acc * 100:.2f}%", flush=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    bundle = work / "encoder-bundle"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "examples"))
    res = run("export", "--model", "models:text_tagger", "--weights", str(weights), "--input", "ids:batch,seq:int64",
              "--dim", "seq=4..128@24", "--task", "token", "--calibration-data", f"npz:{work / 'enc-calib.npz'}",
              "--eval-data", f"npz:{work / 'enc-eval.npz'}", "--int8", "--out", str(bundle), "--force", "--quiet",
              env=env)  # fmt: skip
    ver = run("verify", str(bundle), "--data", f"npz:{work / 'enc-eval.npz'}", "--quiet", "--trust-model-code",
              "--out", str(work / "enc-verify.json"), "--force", env=env)  # fmt: skip
    return summarize(
        "transformer encoder (token tagger)", bundle, work / "enc-verify.json", res, ver, "accuracy"
    )


# --------------------------------------------------------------------------- speed, interleaved


def speed_ratios(bundle: Path, batches=(1, 32), rounds: int = 7, seconds: float = 0.6) -> dict:
    """int8/fp32 throughput per format and batch, measured in one run and interleaved: each round
    times fp32 then int8 (then the reverse order next round) with the bench loop, and the median of the
    per-round ratios is reported, so a slow spell of a shared machine hits both sides alike."""
    from edgeport.bundle import load_bundle
    from edgeport.runtime.benchmark import bench_input, paired_ratios

    b = load_bundle(bundle)
    b.trusted = True  # this script wrote it a moment ago
    backend = {
        "torchscript": "torchscript",
        "onnx": "onnxruntime",
        "openvino": "openvino",
        "executorch": "executorch",
    }
    out: dict = {}
    for a in b.artifacts:
        if a.precision != "int8" or a.format not in backend:
            continue
        row = {}
        with (
            b.runner(backend[a.format], "fp32", "cpu") as f32,
            b.runner(backend[a.format], "int8", "cpu") as i8,
        ):
            for n in batches:
                x = bench_input(f32, n)
                ratios = paired_ratios(f32, i8, x, rounds=rounds, seconds=seconds)
                row[f"b{n}"] = float(np.median(ratios))
                row[f"b{n}_spread"] = [round(min(ratios), 3), round(max(ratios), 3)]
        out[a.format] = row
    return out


# --------------------------------------------------------------------------- the table


def summarize(title: str, bundle: Path, verify_json: Path, res, ver, metric: str) -> dict:
    m = json.loads((bundle / "manifest.json").read_text())
    rows = json.loads(verify_json.read_text())["rows"] if verify_json.is_file() else []
    fp32 = {r["format"]: r for r in rows if r["precision"] == "fp32"}
    out = {"title": title, "formats": {}, "failures": m.get("failures", []), "export_exit": res.returncode}
    convs = sum(
        1 for r in (m.get("layer_report") or {}).get("formats", {}).get("onnx", []) if r["layer"] != "output"
    )
    for a in m["artifacts"]:
        if a["precision"] != "int8":
            continue
        d = a["details"]
        before = [c for n, c in d["candidates"].items() if "float" not in n]
        best = max(before, key=lambda c: c["metrics"].get(metric) or 0) if before else {}
        after = d.get("acceptance", {}).get("metrics", {})
        v = next((r for r in rows if r["format"] == a["format"] and r["precision"] == "int8"), {})
        out["formats"][a["format"]] = {
            "fp32": (fp32.get(a["format"]) or {}).get("metrics", {}).get(f"ref_{metric}"),
            "before": (best.get("metrics") or {}).get(metric),
            "after": after.get(metric),
            "drop_after": after.get("accuracy_drop"),
            "float_layers": [f["layer"] for f in d.get("float_layers", [])],
            "float_share_of_layers": len(d.get("float_layers", [])) / max(convs, 1),
            "export_speedup_b1": d.get("speedup_vs_fp32_batch1"),
            "export_speedup_b32": d.get("speedup_vs_fp32"),
            "verify_passed": v.get("passed"),
            "verify_metric": (v.get("metrics") or {}).get(metric),
        }
    speed = speed_ratios(bundle) if out["formats"] else {}
    for fmt, r in out["formats"].items():
        r["speedup_b1"] = speed.get(fmt, {}).get("b1")
        r["speedup_b32"] = speed.get(fmt, {}).get("b32")
        r["speed_spread"] = speed.get(fmt, {})
    print_table(out, metric)
    return out


def _pct(v):
    return "-" if v is None else f"{v * 100:.2f}%"


def print_table(s: dict, metric: str) -> None:
    print(f"\n{s['title']}: int8 per format ({metric}; fp32 is PyTorch's on the eval data)")
    print(
        f"{'format':<12} {'fp32':>8} {'before':>8} {'after':>8} {'drop':>7} {'float':>24} {'b1 x':>6} {'b32 x':>6}  verify"
    )
    for fmt, r in s["formats"].items():
        fl = ", ".join(r["float_layers"]) or "none"
        print(
            f"{fmt:<12} {_pct(r['fp32']):>8} {_pct(r['before']):>8} {_pct(r['after']):>8} "
            f"{_pct(r['drop_after']):>7} {fl[:24]:>24} {r['speedup_b1'] or 0:>6.2f} {r['speedup_b32'] or 0:>6.2f}  "
            f"{'PASS' if r['verify_passed'] else 'FAIL'} ({_pct(r['verify_metric'])})"
        )
    for f in s["failures"]:
        print(f"{f['format']:<12} no {f['precision']}: {f['reason'][:200]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("EDGEPORT_MNIST_ROOT"), help="MNIST root")
    ap.add_argument("--work", default=None, help="work folder (kept; default: a temp folder)")
    ap.add_argument("--models", default="mnv3,encoder", help="comma list: mnv3, encoder")
    ap.add_argument("--epochs", type=int, default=3, help="MobileNetV3 training epochs")
    ap.add_argument(
        "--image-size",
        type=int,
        default=224,
        help="MobileNetV3 input size in pixels (default 224, its ImageNet size; the 64x64 photos are upsampled). "
        "At 64 px a batch of 32 is so little work that int8's gain on OpenVINO is lost in per-call overhead",
    )
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="int8acc-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.models.split(","):
        print(f"== {name} (work {work})", flush=True)
        results.append(
            mnv3(work, args.data_dir, args.epochs, args.image_size) if name == "mnv3" else encoder(work, 6)
        )
    (work / "int8_accuracy.json").write_text(json.dumps(results, indent=2))
    print(f"\n-> {work / 'int8_accuracy.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
