#!/usr/bin/env bash
# The GPU checks of issues 4 and 5 as one prepared run, for a session that is lent a CUDA machine
# (the project's `device` tool: 15 minutes of device time a session, at most 10 a command).
#
# Prepare here, once (both folders are ignored by git; together with the checkout they stay under
# the tool's 64 MiB):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl av==18.1.0          # PyAV: the image has the rest
#   mkdir -p .carry/data/video .carry/data/weights .carry/data/images/eval
#   cp ../shared/data/video/{foreman_cif.264,sample_1080x720_aac.mp4} .carry/data/video/
#   cp ../shared/data/weights/realesr-animevideov3.pth .carry/data/weights/
#   cp -r ../shared/data/images/eval/Set5 .carry/data/images/eval/
# Run: the device tool's `run` with command "bash tools/device_check.sh", carry [".whl", ".carry"],
# timeout_s 560. Each step has its own time limit; the logs come back under $OUT (check.log and the
# bench JSON files), and each step's exit status is in check.log.
#
# What it checks: every `gpu` test (fp16 within 45 dB of fp32, CUDA graphs, the pinned copy stream,
# the torch flow, temporal smoothing and the denoise pre-pass on CUDA); `vsr bench` of compact-x2
# 1080p -> 4K in fp16, eager and with CUDA graphs (model-only and end-to-end fps, NVML samples);
# the issue-5 judgement on foreman with the GPU path (torch flow, grid_sample warps), Restore times
# with and without the denoise pre-pass and temporal smoothing.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vsr-device-check}
mkdir -p "$OUT"
LOG="$OUT/check.log"
export PYTHONUNBUFFERED=1

if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "device_check: installing the carried wheels failed" | tee -a "$LOG"; exit 1; }
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
# the tests and commands read ../shared/data, which does not travel: the carried copy stands in
if [ -d .carry/data ] && [ ! -e ../shared/data ]; then
    mkdir -p ../shared && ln -s "$PWD/.carry/data" ../shared/data
fi

vsr() { python3 -c "from vsr.cli import main; main()" "$@"; }

step() {  # step NAME SECONDS COMMAND...: run it under a limit, its output and status into the log
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*" | tee -a "$LOG"
    timeout "$limit" "$@" >>"$LOG" 2>&1
    echo "=== $name: exit status $?" | tee -a "$LOG"
}

step environment 60 bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv;
    python3 -c "import torch, av, cv2, numpy; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda,
    \"cudnn\", torch.backends.cudnn.version(), \"av\", av.__version__, \"cv2\", cv2.__version__, \"numpy\",
    numpy.__version__, \"gpu\", torch.cuda.get_device_name(0))"'
step pytest_gpu 240 python3 -m pytest -m gpu -q -rs -p no:cacheprovider
step bench_fp16 100 vsr bench --synthetic 1080p -m compact-x2 --device cuda --precision fp16 \
    --frames 240 --stage-frames 120 --preset ultrafast --json "$OUT/bench_fp16.json"
step bench_fp16_graph 100 vsr bench --synthetic 1080p -m compact-x2 --device cuda --precision fp16 --cuda-graph \
    --frames 240 --stage-frames 120 --preset ultrafast --json "$OUT/bench_fp16_graph.json"
step eval_denoise 120 vsr eval ../shared/data/video/foreman_cif.264 --frames 30 -m gan-x2 --device cuda \
    --precision fp16 --noise 15 --h264 300k --denoise off --denoise auto --denoise-temporal off --denoise-temporal on
step eval_temporal 90 vsr eval ../shared/data/video/foreman_cif.264 --frames 30 -m gan-x2 --device cuda \
    --precision fp16 --temporal off --temporal on
echo "device_check: done; logs in $OUT" | tee -a "$LOG"
