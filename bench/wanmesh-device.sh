#!/usr/bin/env bash
# The server's multi-GPU sampling on a 2-GPU machine, staged by bench/stage-wanmesh.sh into .device-wanmesh/:
#  WanMeshGpuTest: ParallelUNETLoader num_gpus 2 on a Wan2.1 workflow (tiny 4-head Wan, bf16, uni_pc 4 steps): the
#  CUDA-graph mesh = the eager mesh (rel. diff <= 1e-6) and <= 2e-2 vs one GPU, for ulysses 2, ring 2, cfg 2;
#  FluxMeshGpuTest: the same for Flux (a regression check: the Flux mesh now runs on the ranks it shares with Wan,
#  server/engine/MeshWorld). About 1 minute.
# Device call: kind nvidia-h100-x2, carry [".device", ".device-wanmesh"], command: bash .device-wanmesh/wanmesh-device.sh
# Files in $OUT: gpu.txt tests.log
set -uo pipefail
D=${D:-.device-wanmesh}
OUT=${OUT:-/tmp/dit4j-wanmesh}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 )) s]"; }
[ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp
J=(/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
NG=$(nvidia-smi -L | wc -l)
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; date -u +%FT%TZ; } > "$OUT/gpu.txt" 2>&1
head -$NG "$OUT/gpu.txt"; echo "$NG GPU(s)"

rm -rf /tmp/tc && mkdir -p /tmp/tc && python3 -m zipfile -e "$D/test-classes.zip" /tmp/tc
timeout ${TESTS_TIMEOUT:-240} "${J[@]}" -jar "$D"/junit-platform-console-standalone-*.jar execute --class-path "/tmp/tc:$D/dit4j.jar" \
  --select-class org.dit4j.server.wan.WanMeshGpuTest --select-class org.dit4j.server.flux.FluxMeshGpuTest \
  --disable-banner --disable-ansi-colors --details=tree > "$OUT/tests.log" 2>&1
rc=$?; echo "$(el) tests exit $rc"
grep -E "\[dit4j-|✘" "$OUT/tests.log" | head -30
sed -n '/^Failures (/,/^Test run finished/p' "$OUT/tests.log" | grep -vE "^\s+(org\.junit|java\.base|app//org\.junit)" | head -40
grep -E "tests (successful|failed|skipped|found)|containers failed" "$OUT/tests.log"
echo "$(el) done"
