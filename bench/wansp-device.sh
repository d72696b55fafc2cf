#!/usr/bin/env bash
# Multi-GPU Wan2.1 on a 2-GPU machine, staged by bench/stage-wansp.sh into .device-wansp/:
#  1. ParallelWanPipelineGpuTest: the tiny 4-head Wan2.1 pipeline in bf16 on 2 GPUs, CUDA-graph mesh = eager mesh
#     (rel-L2 <= 1e-6) and <= 1e-2 vs one GPU, for ulysses 2, ring 2, cfg 2 (≈ 30 s);
#  2. WanParallelBench: one Wan2.1 transformer forward (random bf16 weights, the same on both GPUs) on 1 GPU vs the
#     meshes ulysses=2, ring=2, cfg=2 (cfg rows: both branches + guidance), eager and CUDA graph, peak GB per GPU,
#     rel-L2 vs 1 GPU; 1.3B at 832×480×81 (≈ 1.5 min). WAN14B=1 adds 14B at 640×640×65 (≈ 3 more minutes).
# Device call: kind nvidia-h100-x2, carry [".device", ".device-wansp"], command: bash .device-wansp/wansp-device.sh
# Files in $OUT: gpu.txt tests.log bench.txt bench-13b.json [bench-14b.json]
# Knobs: SKIP_TESTS=1, SKIP_BENCH=1, WAN14B=1, ITERS=3, CONFIGS="ulysses=2;ring=2;cfg=2"
set -uo pipefail
D=${D:-.device-wansp}
OUT=${OUT:-/tmp/dit4j-wansp}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 )) s]"; }
[ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp
J=(/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
NG=$(nvidia-smi -L | wc -l)
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; date -u +%FT%TZ; } > "$OUT/gpu.txt" 2>&1
head -$NG "$OUT/gpu.txt"; echo "$NG GPU(s)"

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  rm -rf /tmp/tc && mkdir -p /tmp/tc && python3 -m zipfile -e "$D/test-classes.zip" /tmp/tc
  timeout ${TESTS_TIMEOUT:-150} "${J[@]}" -jar "$D"/junit-platform-console-standalone-*.jar execute --class-path "/tmp/tc:$D/dit4j.jar" \
    --select-class org.dit4j.engine.wan.ParallelWanPipelineGpuTest \
    --disable-banner --disable-ansi-colors --details=tree > "$OUT/tests.log" 2>&1
  rc=$?; echo "$(el) tests exit $rc"
  grep -E "\[dit4j-|✘" "$OUT/tests.log" | head -30
  sed -n '/^Failures (/,/^Test run finished/p' "$OUT/tests.log" | grep -vE "^\s+(org\.junit|java\.base|app//org\.junit)" | head -40
  grep -E "tests (successful|failed|skipped|found)|containers failed" "$OUT/tests.log"
fi

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  CONFIGS=${CONFIGS:-"ulysses=2;ring=2;cfg=2"}
  : > "$OUT/bench.txt"
  run_bench() {   # model, json, timeout
    echo "$(el) == WanParallelBench $1 ($CONFIGS)" | tee -a "$OUT/bench.txt"
    timeout "$3" "${J[@]}" -cp "$D/dit4j.jar" org.dit4j.engine.bench.WanParallelBench "$1" "${ITERS:-3}" "$CONFIGS" "$OUT/$2" 2>&1 \
      | grep -v incubator | tee -a "$OUT/bench.txt" | grep -E "^\||rank 0|error|Exception|weights|world"
    echo "$(el) bench $1 exit ${PIPESTATUS[0]}" | tee -a "$OUT/bench.txt"
  }
  run_bench wan-1.3b bench-13b.json ${BENCH_TIMEOUT:-200}
  [ "${WAN14B:-0}" = 1 ] && run_bench wan-14b bench-14b.json ${BENCH14_TIMEOUT:-300}
fi
echo "$(el) done"
