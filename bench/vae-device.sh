#!/usr/bin/env bash
# Flux VAE speed work on the GPU machine, one call (bench/NOTES-vae.md). Expects, relative to the repo root:
#   .device/jre.txz (the lead's JRE), .ref/diffusers-src.tgz, and .device-vaespeed/ holding dit4j.jar (cli fat jar),
#   cuda-tests/ (cuda test classes), junit-console.jar, vae_torch_baseline.py and this script (staged by
#   bench/vae-stage.sh). Carry [".device", ".device-vaespeed", ".ref"]. Steps (first argument, comma-separated,
#   default bench,torch,tests): bench = VaeBench (Flux VAE decode/encode 1024², new vs legacy paths, profiles; Wan2.1
#   VAE decode 480x832x3 latent frames), torch = diffusers AutoencoderKL baseline, tests = the GPU tests of the paths.
# Writes under $OUT: env.txt, vae_dit4j.log/.json, vae_torch.log/.json, junit.txt.
set -uo pipefail
OUT=${OUT:-/tmp/vae-out}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
D=.device-vaespeed
STEPS=${1:-bench,torch,tests}
WAN=${WAN:-480x832x3}
timeout 60 tar xf .device/jre.txz -C /tmp
JAVA="/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector"
{
  echo "== environment"; date -u
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  ls -la /usr/lib/x86_64-linux-gnu/libcudnn.so.9* 2>&1 | head -3
  echo "== cuDNN constants vs cudnn_graph.h"
  timeout 30 $JAVA -cp $D/dit4j.jar:$D/cuda-tests org.dit4j.cuda.cudnn.CudnnConstantsDump > /tmp/consts.txt \
    && timeout 30 python3 $D/cudnn_check_constants.py /usr/include/x86_64-linux-gnu/cudnn_graph.h /tmp/consts.txt | tail -5
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
if [[ ",$STEPS," == *",bench,"* ]]; then
  echo "== VaeBench"
  timeout ${BENCH_S:-170} $JAVA -cp $D/dit4j.jar org.dit4j.engine.bench.VaeBench --resolution 1024 --iters 10 --compare \
    --profile --wan "$WAN" --json "$OUT/vae_dit4j.json" > "$OUT/vae_dit4j.log" 2>&1; echo "bench rc=$?"
  grep -v "^WARNING" "$OUT/vae_dit4j.log" | grep -E "median|rel-L2|^\| [a-z]|dit4j:|Exception|Error" | cut -c1-220 | head -40
fi
if [[ ",$STEPS," == *",torch,"* ]]; then
  echo "== diffusers"
  mkdir -p /tmp/d && timeout 60 tar xzf .ref/diffusers-src.tgz -C /tmp/d
  PYTHONPATH=/tmp/d/src timeout ${TORCH_S:-90} python3 $D/vae_torch_baseline.py --resolution 1024 --iters 10 --profile \
    --json "$OUT/vae_torch.json" > "$OUT/vae_torch.log" 2>&1; echo "torch rc=$?"
  grep -E "diffusers|Error" "$OUT/vae_torch.log" | head
fi
if [[ ",$STEPS," == *",tests,"* ]]; then
  echo "== junit"
  timeout ${TESTS_S:-90} $JAVA -jar $D/junit-console.jar execute --class-path $D/dit4j.jar:$D/cuda-tests \
    --select-class org.dit4j.cuda.VaeFastPathsTest --select-class org.dit4j.cuda.AttentionGemmFallbackTest \
    --select-class org.dit4j.cuda.CudaOpsTest --details=tree --disable-banner --disable-ansi-colors > "$OUT/junit.txt" 2>&1
  echo "junit rc=$?"
  grep -E "tests (successful|failed|aborted)|✘" "$OUT/junit.txt" | cut -c1-300 | head -30
fi
