#!/usr/bin/env bash
# On the GPU machine: the issue-3 performance runs (bench/NOTES-perf.md). Staged by bench/perf-stage.sh into a
# git-ignored folder of the main checkout (default .device-perf): dit4j.jar (this branch), base.jar (the version to
# compare against, optional), tests.zip (core + cuda + engine test classes), the JUnit console launcher, this script.
#   bash .device-perf/perf-device.sh [steps] [resolutions]
# steps, comma-separated, run in this order:
#   base   dit4j bench --profile with base.jar          new   the same with dit4j.jar
#   tests  GPU tests: package org.dit4j.cuda (conformance suite, kernels, graphs, cuDNN, profiler) and FluxGpuTest
#   tune   dit4j.jar bench --profile at 1024 with -Ddit4j.gemm.autotune=8
#   prev   dit4j bench --profile with prev.jar (an intermediate version), at 1024
#   exact  full-size exactness vs diffusers (bench/flux_torch_baseline.py of the main checkout writes weights, inputs and
#          its bf16 + fp32 outputs; FluxReferenceCheck of dit4j.jar compares); needs .ref carried
# While a bench runs, SM clock, power and temperature are sampled every 250 ms into $OUT/clocks-<name>.csv.
# Device call: carry [".device", ".device-perf"]; logs under $OUT.
set -uo pipefail
D=$(cd "$(dirname "$0")" && pwd)
steps=${1:-base,tests,new}
res=${2:-1024}
OUT=${OUT:-/tmp/perf-out}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
[ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp
J=(/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader | tee "$OUT/gpu.txt"
date -u +%FT%TZ | tee -a "$OUT/gpu.txt"

bench() {   # name jar resolutions [java options...]
  local name=$1 jar=$2 r=$3; shift 3
  echo "== bench $name ($r) $*"
  nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 250 > "$OUT/clocks-$name.csv" 2>&1 &
  local mon=$!
  timeout 170 "${J[@]}" "$@" -jar "$jar" bench --resolution "$r" --iters 10 --profile > "$OUT/bench-$name.txt" 2>&1
  echo "exit $?"
  kill $mon 2>/dev/null
  awk -F', ' '{gsub(/ MHz/,"",$2); gsub(/ W/,"",$3); if ($3+0 > 300) {n++; c+=$2; p+=$3; if ($2+0 < cmin || cmin == 0) cmin=$2}}
    END {if (n) printf "clocks while busy (power > 300 W, %d samples): SM mean %.0f MHz, min %.0f MHz, power mean %.0f W\n", n, c/n, cmin, p/n}' "$OUT/clocks-$name.csv"
  grep -E "^\| (model|flux)|^profile|^\| (GEMM|ATTENTION|OTHER) \||weights ready" "$OUT/bench-$name.txt"
}

IFS=, read -ra S <<< "$steps"
for s in "${S[@]}"; do
  case $s in
    base) bench base "$D/base.jar" "$res" ;;
    new) bench new "$D/dit4j.jar" "$res" ;;
    tune) bench tune "$D/dit4j.jar" 1024 -Ddit4j.gemm.autotune=8 ;;
    prev) bench prev "$D/prev.jar" 1024 ;;
    exact)
      echo "== full-size exactness vs diffusers"
      if [ ! -d /tmp/d/src/diffusers ]; then mkdir -p /tmp/d && tar xzf .ref/diffusers-src.tgz -C /tmp/d; fi
      PYTHONPATH=/tmp/d/src timeout 300 python3 bench/flux_torch_baseline.py --resolutions 1024 --save-dir /tmp/fluxref --iters 1 --warmup 0 2>&1 | tail -3
      timeout 240 "${J[@]}" -cp "$D/dit4j.jar" org.dit4j.engine.bench.FluxReferenceCheck \
        /tmp/fluxref/diffusion_pytorch_model.safetensors /tmp/fluxref/io.safetensors 2e-2 auto BF16 2>&1 | grep -v incubator | tee "$OUT/exact.txt"
      rm -rf /tmp/fluxref
      ;;
    tests)
      rm -rf /tmp/pt && mkdir -p /tmp/pt && (cd /tmp/pt && python3 -m zipfile -e "$D/tests.zip" .)
      timeout 240 "${J[@]}" -jar "$(ls "$D"/junit-platform-console-standalone-*.jar | head -1)" execute \
        --class-path "/tmp/pt:$D/dit4j.jar" --select-package org.dit4j.cuda --select-class org.dit4j.engine.FluxGpuTest \
        --disable-banner --disable-ansi-colors --details=tree > "$OUT/tests.log" 2>&1
      echo "== tests: exit $?"
      grep -E "\[dit4j-engine\]" "$OUT/tests.log" | head -20
      sed -n '/^Failures (/,/^Test run finished/p' "$OUT/tests.log" | grep -vE "^\s+(org\.junit|java\.base|app//org\.junit)" | head -60
      grep -E "tests (successful|failed|skipped|found)|containers failed" "$OUT/tests.log"
      ;;
    *) echo "unknown step $s" ;;
  esac
done
