#!/usr/bin/env bash
# One prepared GPU check (for a machine with a CUDA PyTorch and no Node.js): build the addon with
# plain cmake against the LibTorch inside that Python torch, run the CUDA smoke checks, and run
# the engine bench on the GPU next to Python eager. Expects dist/ (compiled TS) and
# node_modules/node-addon-api + node_modules/node-api-headers; a node binary in .device/node.xz
# is used when `node` is missing. Results go to $OUT (default /tmp/bia-gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/bia-gpu}
mkdir -p "$OUT"
if ! command -v node >/dev/null; then
  mkdir -p /tmp/nodebin && xz -dc .device/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
  export PATH=/tmp/nodebin:$PATH
fi
# nlohmann/json.hpp, carried when the machine lacks nlohmann-json3-dev
[ -d .device/include ] && export CPLUS_INCLUDE_PATH=$PWD/.device/include${CPLUS_INCLUDE_PATH:+:$CPLUS_INCLUDE_PATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
node --version
node native/tools/torch-config.mjs --describe || exit 1
gen=$(command -v ninja >/dev/null && echo Ninja || echo "Unix Makefiles")
start=$(date +%s)
if ! { cmake -S . -B build-cuda -G "$gen" -DCMAKE_BUILD_TYPE=Release && cmake --build build-cuda -j "$(nproc)"; } > "$OUT/build.log" 2>&1; then
  tail -60 "$OUT/build.log"; exit 1
fi
echo "build: $(( $(date +%s) - start )) s"
export BIA_TORCH_ADDON=$PWD/build-cuda/Release/bia_torch.node
node dist/ts/cli.js info || exit 1
node dist/bench/gpu-smoke.js 2>&1 | tee "$OUT/gpu-smoke.log" || exit 1
[ "${BENCH:-1}" = 0 ] && exit 0
node dist/bench/unet.js --device cuda --batches 1,4,16 --warmup 3 --iterations 10 --json "$OUT/unet-cuda-float32.json"
node dist/bench/unet.js --device cuda --batches 1,4,16 --warmup 3 --iterations 10 --autocast bfloat16 --json "$OUT/unet-cuda-autocast-bf16.json"
node dist/bench/unet.js --device cuda --batches 1,4,16 --warmup 3 --iterations 10 --dtype bfloat16 --json "$OUT/unet-cuda-bfloat16.json"
[ "${ENGINE:-0}" = 1 ] && node dist/bench/engine.js --device cuda --rounds 2 --json "$OUT/engine-cuda-float32.json"
true
