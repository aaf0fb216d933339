#!/bin/bash
# edgeport's CUDA check: verify and bench every torch-family artifact on cpu and cuda, on a GPU machine
# that has torch but not edgeport.  Prepare the folder G (default .gpu) on the dev machine first:
#   G/whl/edgeport-*.whl      pip wheel --no-deps --no-build-isolation -w G/whl .
#   G/mnist/                  an MNIST bundle (make run -> runs/mnist/bundle)
#   G/mnist-test.npz          input=<uint8 [N,28,28] test images>, labels=<int64 [N]>
#   G/mnv3/                   edgeport export ... --formats torchscript,onnx --int8 (any image classifier)
#   G/photos/                 its eval image folder
# then run `OUT=DIR bash benchmarks/cuda_check.sh` there; results land in OUT.
set -u
export PYTHONUNBUFFERED=1 EDGEPORT_TRUST_MODEL_CODE=1 MPLBACKEND=Agg
G=${G:-.gpu}
[ -n "${SKIP_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $G/whl/*.whl || exit 9
[ -n "${SKIP_INSTALL:-}" ] || export PYTHONPATH=/tmp/site
PY=${PY:-python3}; EP="$PY -m edgeport"
step() { echo; echo "== $1 ($(date +%T))"; }
step env
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  $PY -c "import torch,onnxruntime as o,numpy,torchvision;print('torch',torch.__version__,'cuda',torch.version.cuda,torch.cuda.is_available(),'| torchvision',torchvision.__version__,'| ort',o.__version__,o.get_available_providers(),'| numpy',numpy.__version__)"
  echo "cpus $(nproc)"; } 2>&1 | tee $OUT/env.txt
step devices
$EP devices 2>&1 | tee $OUT/devices.txt
step "mnist verify: torch, torchscript, onnxruntime on cpu and cuda, 2000 test images"
timeout 150 $EP verify $G/mnist --backends torch,torchscript,onnxruntime --devices cpu,cuda --data npz:$G/mnist-test.npz --out $OUT/mnist-verify.json --quiet 2>&1 | tail -25
step "mnist selfcheck on cuda"
timeout 60 $EP selfcheck $G/mnist --backends torchscript --devices cuda 2>&1 | tail -8
step "mnist bench"
timeout 150 $EP bench $G/mnist --backends torch,torchscript,onnxruntime --devices cpu,cuda --batch-sizes 1,32,256 --warmup-seconds 0.3 --min-seconds 0.7 --out $OUT/mnist-bench.json --quiet 2>&1 | tail -30
step "mnv3 (224 px) verify on cuda, 2000 photos"
timeout 200 $EP verify $G/mnv3 --backends torch,torchscript --devices cuda --data imagefolder:$G/photos --out $OUT/mnv3-verify.json --quiet 2>&1 | tail -25
step "mnv3 bench"
timeout 200 $EP bench $G/mnv3 --backends torch,torchscript,onnxruntime --devices cpu,cuda --batch-sizes 1,32,256 --warmup-seconds 0.3 --min-seconds 0.7 --min-iters 5 --out $OUT/mnv3-bench.json --quiet 2>&1 | tail -30

step "torchscript int8 on cuda, asked for directly"
timeout 60 $EP verify $G/mnist --backends torchscript --precisions int8 --devices cuda --data npz:$G/mnist-test.npz --quiet 2>&1 | tail -3; echo "exit ${PIPESTATUS[0]}"
step done
