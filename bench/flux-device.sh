#!/usr/bin/env bash
# On the GPU machine: Flux GPU tests, dit4j bench and the PyTorch baseline side by side, and the full-size exactness
# check against diffusers. Staged by bench/stage-device.sh. Results and logs under $OUT.
#   bash bench/flux-device.sh [all|tests|cudatests|bench|torch|exact|pipeline|cache] [resolutions, default 512,1024,2048]
#   (cudatests, pipeline and cache run only when named; CACHES="none teacache+host …" picks the cache runs)
set -uo pipefail
what=${1:-all}
res=${2:-512,1024,2048}
OUT=${OUT:-/tmp/dit4j-out}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
[ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp
J=(/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
if [ ! -d /tmp/d/src/diffusers ]; then mkdir -p /tmp/d && tar xzf .ref/diffusers-src.tgz -C /tmp/d; fi
export PYTHONPATH=/tmp/d/src
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
date -u +%FT%TZ >> "$OUT/gpu.txt"
has() { [ "$what" = all ] || [[ ",$what," == *",$1,"* ]]; }
if has tests; then
  rm -rf /tmp/et && mkdir -p /tmp/et && (cd /tmp/et && python3 -m zipfile -e "$OLDPWD/.device-main/engine-tests.zip" .)
  timeout 300 "${J[@]}" -jar .device-main/junit-platform-console-standalone-*.jar execute \
    --class-path "/tmp/et:.device-main/dit4j.jar" --select-class org.dit4j.engine.FluxGpuTest --select-class org.dit4j.cuda.AttentionGemmFallbackTest \
    --select-class org.dit4j.engine.flux.FluxCacheGpuTest \
    --disable-banner --disable-ansi-colors --details=tree > "$OUT/tests.log" 2>&1
  grep -E "dit4j-engine|✘|tests (successful|failed|skipped)|Exception|expected" "$OUT/tests.log" | head -30
fi
if [[ ",$what," == *",cudatests,"* ]]; then
  echo "== cuda package GPU tests"
  rm -rf /tmp/et && mkdir -p /tmp/et && (cd /tmp/et && python3 -m zipfile -e "$OLDPWD/.device-main/engine-tests.zip" .)
  timeout 400 "${J[@]}" -jar .device-main/junit-platform-console-standalone-*.jar execute \
    --class-path "/tmp/et:.device-main/dit4j.jar" --select-package org.dit4j.cuda --exclude-classname '.*Nccl.*' \
    --disable-banner --disable-ansi-colors --details=tree > "$OUT/cudatests.log" 2>&1
  grep -E "✘|tests (successful|failed|skipped)" "$OUT/cudatests.log" | head -30
  sed -n '/^Failures (/,/^Test run finished/p' "$OUT/cudatests.log" | grep -vE "^\s+(org\.junit|java\.base|app//org\.junit)" | head -60
fi
if has bench; then
  echo "== dit4j bench"
  timeout 420 "${J[@]}" -jar .device-main/dit4j.jar bench --resolution "$res" --iters 10 --json "$OUT/dit4j.json" ${BENCH_ARGS:-} 2>&1 | grep -v "incubator" | tee "$OUT/dit4j-bench.txt"
fi
if has torch; then
  echo "== PyTorch baseline"
  timeout 540 python3 bench/flux_torch_baseline.py --resolutions ${res//,/ } --compile 1024 --json "$OUT/torch.json" 2>&1 \
    | grep -vE "Warning|warn\(" | tee "$OUT/torch.txt"
fi
if [ -f "$OUT/dit4j.json" ] && [ -f "$OUT/torch.json" ]; then
  python3 bench/compare.py "$OUT/dit4j.json" "$OUT/torch.json" | tee "$OUT/compare.md"
fi
if [[ ",$what," == *",pipeline,"* ]]; then
  echo "== full pipeline, random full-size Flux.1-dev files (transformer, clip_l, t5xxl, ae), 1024², 28 steps"
  D=/tmp/fluxrand; rm -rf "$D"
  timeout 240 "${J[@]}" -cp .device-main/dit4j.jar org.dit4j.engine.bench.RandomFluxFiles "$D" 2>&1 | grep -v incubator
  mkdir -p "$D/tokenizers/clip-vit-large-patch14" "$D/tokenizers/t5-v1_1-xxl"
  cp .device-main/tokenizers/clip/vocab.json .device-main/tokenizers/clip/merges.txt "$D/tokenizers/clip-vit-large-patch14/"
  cp .device-main/tokenizers/t5/tokenizer.json "$D/tokenizers/t5-v1_1-xxl/"
  timeout 300 "${J[@]}" -jar .device-main/dit4j.jar generate --model "$D" --prompt "a lighthouse on a cliff at dawn, oil painting" \
    --width 1024 --height 1024 --steps 28 --seed 1 --runs 3 --out "$OUT/pipeline-random.png" 2>&1 | grep -vE "incubator|denoise \[" \
    | tee "$OUT/pipeline.txt"
  rm -rf "$D"
fi
if [[ ",$what," == *",cache,"* ]]; then
  echo "== step caches: full pipeline, random full-size Flux.1-dev files, 1024², 28 steps, published default thresholds"
  echo "   (random weights do not reproduce a trained model's skip rates; see the run summaries for the patterns)"
  D=/tmp/fluxrand; rm -rf "$D"
  timeout 240 "${J[@]}" -cp .device-main/dit4j.jar org.dit4j.engine.bench.RandomFluxFiles "$D" 2>&1 | grep -v incubator
  mkdir -p "$D/tokenizers/clip-vit-large-patch14" "$D/tokenizers/t5-v1_1-xxl"
  cp .device-main/tokenizers/clip/vocab.json .device-main/tokenizers/clip/merges.txt "$D/tokenizers/clip-vit-large-patch14/"
  cp .device-main/tokenizers/t5/tokenizer.json "$D/tokenizers/t5-v1_1-xxl/"
  # an entry "SPEC+host" adds --cache-on-host (residuals in pinned host memory)
  for c in ${CACHES:-none teacache magcache fbcache}; do
    spec=${c%+host}; extra=(); [ "$spec" != "$c" ] && extra=(--cache-on-host)
    echo "-- --cache $spec ${extra[*]:-}"
    timeout 300 "${J[@]}" -jar .device-main/dit4j.jar generate --model "$D" --prompt "a lighthouse on a cliff at dawn, oil painting" \
      --width 1024 --height 1024 --steps 28 --seed 1 --runs 2 --cache "$spec" "${extra[@]}" --out "/tmp/cache-$c.png" 2>&1 \
      | grep -vE "incubator|denoise \[" | tee "$OUT/cache-$c.txt"
  done
  rm -rf "$D"
fi
if has exact; then
  echo "== full-size exactness vs diffusers"
  timeout 300 python3 bench/flux_torch_baseline.py --resolutions 1024 --save-dir /tmp/fluxref --iters 1 --warmup 0 2>&1 | tail -3
  timeout 240 "${J[@]}" -cp .device-main/dit4j.jar org.dit4j.engine.bench.FluxReferenceCheck \
    /tmp/fluxref/diffusion_pytorch_model.safetensors /tmp/fluxref/io.safetensors 2e-2 auto ${EXACT_DTYPES:-BF16} 2>&1 | grep -v incubator | tee "$OUT/exact.txt"
  rm -rf /tmp/fluxref
fi
