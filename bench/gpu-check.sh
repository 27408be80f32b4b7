#!/usr/bin/env bash
# One prepared GPU check (for a machine with a CUDA PyTorch and no Node.js): build the addon with
# plain cmake against the LibTorch inside that Python torch, run the CUDA smoke checks, then the
# `bia bench` suites on the GPU at the celeba-hq-256 config with the Python eager references side by
# side, and the whole default erasure (128 neighbours, 40 steps, walk). Expects dist/ (compiled TS)
# and node_modules/{node-addon-api,node-api-headers,libsvm-js}; a node binary in .device/node.xz is
# used when `node` is missing. Results go to $OUT (default /tmp/bia-gpu): at most 8 files.
#   STAGES="smoke core variants ddim pipeline" (default all) picks what runs after the build.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/bia-gpu}
STAGES=${STAGES:-smoke core variants ddim pipeline}
mkdir -p "$OUT"
if ! command -v node >/dev/null; then
  mkdir -p /tmp/nodebin && xz -T0 -dc .device/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
  export PATH=/tmp/nodebin:$PATH
fi
# nlohmann/json.hpp, carried when the machine lacks nlohmann-json3-dev
[ -d .device/include ] && export CPLUS_INCLUDE_PATH=$PWD/.device/include${CPLUS_INCLUDE_PATH:+:$CPLUS_INCLUDE_PATH}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
node --version
node native/tools/torch-config.mjs --describe || exit 1
gen=$(command -v ninja >/dev/null && echo Ninja || echo "Unix Makefiles")
start=$(date +%s)
if ! { cmake -S . -B build-cuda -G "$gen" -DCMAKE_BUILD_TYPE=Release && cmake --build build-cuda -j "$(nproc)"; } > "$OUT/build.log" 2>&1; then
  grep -m 20 -B2 -A6 'error' "$OUT/build.log" | head -120; exit 1
fi
rm -f "$OUT/build.log"
echo "build: $(( $(date +%s) - start )) s"
export BIA_TORCH_ADDON=$PWD/build-cuda/Release/bia_torch.node
export BIA_CUDNN_BENCHMARK=${BIA_CUDNN_BENCHMARK:-1}
node dist/ts/cli.js info || exit 1
has() { [[ " $STAGES " == *" $1 "* ]]; }
BENCH="node dist/ts/cli.js bench --config celeba-hq-256 --device cuda"
stage() { echo "== $1 ($(date +%T))"; }
if has smoke; then stage smoke; timeout 120 node dist/bench/gpu-smoke.js 2>&1 | tee "$OUT/gpu-smoke.log" || exit 1; fi
# Engine, UNet (forward sweep 1/4/16 with the op breakdown, training step) and encoders at bf16 autocast.
if has core; then stage core; timeout 240 $BENCH engine unet identity --autocast bfloat16 --trials 5 --json "$OUT/bench-core-bf16.json"; fi
# The whole default erasure: 128 neighbours, 40 steps, walk; the first image is the warm-up.
if has pipeline; then stage pipeline; timeout 300 $BENCH pipeline ${PIPELINE_PRECISION:---autocast bfloat16} --images ${IMAGES:-3} --batch-size ${BATCH:-32} --json "$OUT/bench-pipeline-bf16.json"; fi
# The UNet forward in float32 (TF32 convolutions), with bf16 weights and with fp16 autocast (no references).
if has variants; then
  stage variants
  timeout 100 $BENCH unet --trials 5 --no-python --batches 1,16 --json "$OUT/bench-unet-fp32.json"
  timeout 100 $BENCH unet --dtype bfloat16 --trials 5 --no-python --batches 16,32 --json "$OUT/bench-unet-bf16w.json"
  timeout 100 $BENCH unet --autocast float16 --trials 5 --no-python --batches 16 --json "$OUT/bench-unet-fp16.json"
fi
# DDIM inversion and decoding (40 steps), the SVM fit, and the optimize absorption per iteration.
if has ddim; then stage ddim; timeout 300 $BENCH invert decode svm absorb --autocast bfloat16 --trials 2 --batches 1,16 --json "$OUT/bench-ddim-bf16.json"; fi
stage done
true
