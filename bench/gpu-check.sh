#!/usr/bin/env bash
# Runs the CUDA backend's GPU tests on a GPU machine; with --bench also the CUDA micro-benchmarks (CudaBench).
# Builds nothing: bench/prepare-gpu.sh (run where Maven is) puts the jars, the JUnit console launcher and this
# script into .device-cuda/. Needs a JRE 25 (default: unpacked from .device/jre.txz) and the NVIDIA libraries.
# Logs go to $OUT (default /tmp/dit4j-gpu-check). Exit status: the test run's.
set -uo pipefail
DIR=${DIT4J_DEVICE_DIR:-.device-cuda}
OUT=${OUT:-/tmp/dit4j-gpu-check}
mkdir -p "$OUT"
JAVA_BIN=${JAVA_BIN:-}
if [ -z "$JAVA_BIN" ]; then
  if [ ! -x /tmp/jre/bin/java ]; then tar xf .device/jre.txz -C /tmp || { echo "no JRE: .device/jre.txz missing"; exit 2; }; fi
  JAVA_BIN=/tmp/jre/bin/java
fi
JAVA=("$JAVA_BIN" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m)
# the test classes are scanned from a folder: a jlinked JRE may lack the jar file system (jdk.zipfs)
TESTS=/tmp/dit4j-cuda-tests
rm -rf "$TESTS" && python3 -m zipfile -e "$(ls "$DIR"/dit4j-cuda-*-tests.jar | head -1)" "$TESTS"
CP="$TESTS:$(ls "$DIR"/*.jar | grep -v console-standalone | grep -v dit4j-cuda-.*-tests.jar | tr '\n' ':')"
LAUNCHER=$(ls "$DIR"/junit-platform-console-standalone-*.jar | head -1)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader 2>/dev/null | tee "$OUT/gpu.txt"
"${JAVA[@]}" -jar "$LAUNCHER" execute --class-path "$CP" --select-package org.dit4j.cuda \
  --disable-banner --disable-ansi-colors --details=tree --reports-dir "$OUT/junit" > "$OUT/tests.log" 2>&1
rc=$?
grep -E "\[dit4j-cuda\]|✘" "$OUT/tests.log" | head -60
sed -n '/^Failures (/,/^Test run finished/p' "$OUT/tests.log" | grep -vE "^\s+(org\.junit|java\.base|app//org\.junit)" | head -120
grep -E "tests (successful|failed|skipped|found)|containers failed" "$OUT/tests.log"
if [ "${1:-}" = "--bench" ]; then
  "${JAVA[@]}" -cp "$CP" org.dit4j.cuda.CudaBench 2>&1 | tee "$OUT/bench.txt"
  # the same GEMMs with 8 heuristic candidates timed per shape (autotune; off by default)
  "${JAVA[@]}" -Ddit4j.gemm.autotune=8 -cp "$CP" org.dit4j.cuda.CudaBench gemm 2>&1 | tee "$OUT/bench-autotune.txt"
fi
exit $rc
