#!/usr/bin/env bash
# Issue 17's GPU check, prepared (not yet run: no GPU machine was lent to the session that wrote it). Builds and
# smoke-tests like bench/gpu-check.sh (STAGES=smoke), then times the whole default erasure (celeba-hq-256,
# 128 neighbours, 40 steps, asyrp, walk; random weights) on one GPU in one process per run:
#   1. the recorded configuration: bf16 autocast, decoding batch 32;
#   2. one decoding batch for all 128 neighbours (--batch-size 128);
#   3. the same with bf16 weights (--dtype bfloat16);
#   4. run 2 with the labels from a 10-step coarse decoding (BIA_BENCH_ERASE; speed only: the labels'
#      agreement cannot be measured with random weights, see docs/throughput.md).
# Each JSON file has the images per hour, UNet image-calls per image and the stage times. The whole run takes
# about 8 minutes on an H100 (runs 1–3 at about 50 s or less per image × 3 images, plus the build).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/bia-gpu}
mkdir -p "$OUT"
STAGES=smoke OUT="$OUT" bash bench/gpu-check.sh || exit 1
export BIA_TORCH_ADDON=$PWD/build-cuda/Release/bia_torch.node
export BIA_CUDNN_BENCHMARK=${BIA_CUDNN_BENCHMARK:-1}
BENCH="node dist/ts/cli.js bench pipeline --config celeba-hq-256 --device cuda --images ${IMAGES:-3}"
echo "== batch 32, bf16 autocast ($(date +%T))"
timeout 240 $BENCH --autocast bfloat16 --batch-size 32 --json "$OUT/pipeline-b32-bf16.json"
echo "== batch 128, bf16 autocast ($(date +%T))"
timeout 200 $BENCH --autocast bfloat16 --batch-size 128 --json "$OUT/pipeline-b128-bf16.json"
echo "== batch 128, bf16 weights ($(date +%T))"
timeout 200 $BENCH --dtype bfloat16 --batch-size 128 --json "$OUT/pipeline-b128-bf16w.json"
echo "== batch 128, bf16 autocast, coarse 10-step labels ($(date +%T))"
BIA_BENCH_ERASE='{"labelSteps":10,"labelFrom":"coarse"}' timeout 120 $BENCH --autocast bfloat16 --batch-size 128 --json "$OUT/pipeline-b128-bf16-coarse10.json"
echo "== done ($(date +%T))"
