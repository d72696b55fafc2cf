#!/usr/bin/env bash
# cuDNN SDPA checks + benchmark on the GPU machine, one call. Expects, relative to the repo root:
#   .device/jre.tgz (the lead's JRE) and .device-cudnn/ holding core.jar, cuda.jar, cuda-tests/ (test classes),
#   junit-console.jar and copies of bench/cudnn_*.py. Writes logs and tables under $OUT.
set -u
OUT=${OUT:-/tmp/cudnn-out}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
D=.device-cudnn
tar xzf .device/jre.tgz -C /tmp
JAVA="/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector"
CP=$D/core.jar:$D/cuda.jar:$D/cuda-tests
{
  echo "== environment"; date -u
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  ls /usr/lib/x86_64-linux-gnu | grep -i cudnn
  python3 -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"
  find / -xdev \( -name 'libcudnn.so*' -o -name 'cudnn_graph.h' -o -name 'cudnn_version.h' \) 2>/dev/null | grep -v ^/proc
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
echo "== constants"
HDR=$(find / -xdev -name cudnn_graph.h 2>/dev/null | head -1)
$JAVA -cp $CP org.dit4j.cuda.cudnn.CudnnConstantsDump > /tmp/consts.txt
if [ -n "$HDR" ]; then python3 $D/cudnn_check_constants.py "$HDR" /tmp/consts.txt 2>&1 | tee "$OUT/constants.txt"; \
  grep -h "define CUDNN_M[AI]" "$(dirname "$HDR")/cudnn_version.h" >> "$OUT/env.txt"; else echo "no cudnn_graph.h found" | tee "$OUT/constants.txt"; fi
echo "== junit"
timeout 240 $JAVA -jar $D/junit-console.jar execute --class-path $CP --select-class org.dit4j.cuda.cudnn.CudnnSdpaTest \
  --details=tree --disable-banner --disable-ansi-colors > "$OUT/junit.txt" 2>&1; echo "junit rc=$?"
grep -E "tests (successful|failed|aborted|skipped)|✘|↷" "$OUT/junit.txt" | head -40
echo "== java bench"
timeout 240 $JAVA -cp $CP org.dit4j.cuda.cudnn.CudnnSdpaBench "$OUT/java-bench.tsv" "$@" > "$OUT/java-bench.log" 2>&1; echo "bench rc=$?"
cat "$OUT/java-bench.log" | cut -c1-400
echo "== torch bench"
timeout 200 python3 $D/cudnn_sdpa_torch.py "$OUT/torch-bench.tsv" "$@" 2>&1 | tee "$OUT/torch-bench.log" | cut -c1-600
