#!/usr/bin/env bash
# On the 2-GPU machine (H100 x2): NCCL communicator tests, tiny-Flux equivalence on 2 GPUs vs 1 GPU, the new
# attentionWithLse/mergeAttention conformance on CUDA (host defaults), then FluxParallelBench (full-size Flux.1-dev
# 1024², Ulysses-2 and CFG-parallel vs 1 GPU). Staged by bench/stage-mgpu.sh into .device-mgpu/ (with this script).
# Device call: carry [".device", ".device-mgpu"], command: bash .device-mgpu/mgpu-device.sh
set -uo pipefail
D=.device-mgpu
OUT=${OUT:-/tmp/dit4j-mgpu}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
[ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp
J=(/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvidia-smi topo -m; date -u +%FT%TZ; } > "$OUT/gpu.txt" 2>&1
head -3 "$OUT/gpu.txt"
rm -rf /tmp/tc && mkdir -p /tmp/tc && python3 -m zipfile -e "$D/test-classes.zip" /tmp/tc
CP="/tmp/tc:$D/dit4j.jar"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout ${TESTS_TIMEOUT:-100} "${J[@]}" -jar "$D"/junit-platform-console-standalone-*.jar execute --class-path "$CP" \
    --select-class org.dit4j.cuda.NcclCommunicatorTest --select-class org.dit4j.engine.parallel.FluxMultiGpuTest \
    --select-class org.dit4j.engine.parallel.VaeMultiGpuTest --select-class org.dit4j.cuda.NcclTest \
    --select-method org.dit4j.cuda.CudaOpsConformanceTest#attentionWithLseReturnsOutputAndRowLogSumExp \
    --select-method org.dit4j.cuda.CudaOpsConformanceTest#mergeOfKeyBlocksEqualsAttentionOverAllKeys \
    --select-method org.dit4j.cuda.CudaOpsConformanceTest#mergeRejectsMismatchedParts \
    --disable-banner --disable-ansi-colors --details=tree > "$OUT/tests.log" 2>&1
  echo "tests exit $?"
  grep -E "\[dit4j-|✘" "$OUT/tests.log" | head -40
  sed -n '/^Failures (/,/^Test run finished/p' "$OUT/tests.log" | grep -vE "^\s+(org\.junit|java\.base|app//org\.junit)" | head -60
  grep -E "tests (successful|failed|skipped|found)|containers failed" "$OUT/tests.log"
fi
timeout ${BENCH_TIMEOUT:-125} "${J[@]}" -cp "$D/dit4j.jar" org.dit4j.engine.bench.FluxParallelBench ${BENCH_RES:-1024} ${BENCH_ITERS:-5} \
  "${BENCH_CONFIGS:-ulysses=2;cfg=2}" "$OUT/mgpu.json" 2>&1 | grep -v incubator | tee "$OUT/bench.txt"
echo "bench exit ${PIPESTATUS[0]}"
