#!/usr/bin/env bash
# On the GPU machine: the Wan step-cache GPU tests (CUDA graphs per branch and program equal eager runs, threshold 0
# equals the uncached graph run, residuals in pinned host memory equal residuals on the GPU), with the Flux step-cache
# GPU tests as a regression check of the shared code. Staged by bench/stage-device.sh (after merging s2-wancache).
#   Device call: carry [".device", ".device-main"], command: bash bench/wan-cache-device.sh   (about 2 minutes)
# Results: $OUT/wan-cache-tests.log (JUnit console tree + the per-branch computed/skipped patterns), $OUT/gpu.txt.
set -uo pipefail
OUT=${OUT:-/tmp/dit4j-out}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
[ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp
J=(/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
date -u +%FT%TZ >> "$OUT/gpu.txt"
rm -rf /tmp/et && mkdir -p /tmp/et && (cd /tmp/et && python3 -m zipfile -e "$OLDPWD/.device-main/engine-tests.zip" .)
timeout 400 "${J[@]}" -jar .device-main/junit-platform-console-standalone-*.jar execute \
  --class-path "/tmp/et:.device-main/dit4j.jar" \
  --select-class org.dit4j.engine.wan.WanCacheGpuTest \
  --select-class org.dit4j.engine.flux.FluxCacheGpuTest \
  --details=tree > "$OUT/wan-cache-tests.log" 2>&1
rc=$?
echo "exit $rc" >> "$OUT/wan-cache-tests.log"
tail -25 "$OUT/wan-cache-tests.log"
exit $rc
