#!/usr/bin/env bash
# cuDNN SDPA checks + benchmark on the GPU machine, one call. Expects, relative to the repo root:
#   .device/jre.txz (the lead's JRE) and .device-cudnn/ holding core.jar, cuda.jar, cuda-tests/ (test classes),
#   junit-console.jar and copies of bench/cudnn_*.py. Writes logs under $OUT (6 files).
# The Java bench runs against the system cuDNN (loader path) and against PyTorch's wheel cuDNN, so the
# comparison with torch's cuDNN backend is also made on the very same library.
set -u
OUT=${OUT:-/tmp/cudnn-out}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
D=.device-cudnn
tar xf .device/jre.txz -C /tmp
JAVA="/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector"
CP=$D/core.jar:$D/cuda.jar:$D/cuda-tests
WHEEL=$(python3 -c "import nvidia.cudnn, os; print(os.path.join(list(nvidia.cudnn.__path__)[0], 'lib'))" 2>/dev/null)
{
  echo "== environment"; date -u
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw,power.limit --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"
  ls -la /usr/lib/x86_64-linux-gnu/libcudnn.so.9 "$WHEEL"/libcudnn.so.9
  echo "== constants"
  for HDR in /usr/include/x86_64-linux-gnu/cudnn_graph.h "$WHEEL"/../include/cudnn_graph.h; do
    grep -h "define CUDNN_M[AI][JN]OR\|define CUDNN_PATCHLEVEL" "$(dirname "$HDR")/cudnn_version.h"
    $JAVA -cp $CP org.dit4j.cuda.cudnn.CudnnConstantsDump > /tmp/consts.txt && python3 $D/cudnn_check_constants.py "$HDR" /tmp/consts.txt
  done
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
echo "== junit"
timeout 240 $JAVA -jar $D/junit-console.jar execute --class-path $CP --select-class org.dit4j.cuda.cudnn.CudnnSdpaTest \
  --details=tree --disable-banner --disable-ansi-colors > "$OUT/junit.txt" 2>&1; echo "junit rc=$?"
grep -E "tests (successful|failed|aborted|skipped)|✘|■" "$OUT/junit.txt" | cut -c1-300 | head -40
bench() {  # $1 = log name, $2 = DIT4J_CUDA_LIBS or empty
  mkdir -p /tmp/$1
  DIT4J_CUDA_LIBS=$2 timeout 230 $JAVA -cp $CP org.dit4j.cuda.cudnn.CudnnSdpaBench /tmp/$1/bench.tsv "${@:3}" > "$OUT/$1.log" 2>&1
  echo "== java bench $1 rc=$?"; grep -v WARNING "$OUT/$1.log" | cut -c1-300
}
bench java-914 "" "$@"
cp /tmp/java-914/plans.txt "$OUT/plans.txt" 2>/dev/null
bench java-919 "$WHEEL" "$@"
echo "== torch bench"
timeout 200 python3 $D/cudnn_sdpa_torch.py /tmp/torch-bench.tsv "$@" 2>&1 | grep -v -i "warn" | tee "$OUT/torch.log" | cut -c1-600
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw --format=csv,noheader
