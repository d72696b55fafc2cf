#!/usr/bin/env bash
# On the GPU machine: Wan2.1 transformer GPU tests, `dit4j bench --model wan-1.3b|wan-14b` side by side with the
# diffusers eager baseline (bench/wan_torch_baseline.py), and the full-size exactness check (WanReferenceCheck on
# diffusers' weights, inputs and fp32 output). Staged by bench/wan-stage.sh into $STAGE (default .device-wanbench).
#   bash .device-wanbench/wan-device.sh [all|tests,bench,torch,exact]
# Environment: MODELS (default "wan-1.3b wan-14b"), ITERS_13B (10), ITERS_14B (5), EXACT_FRAMES (81),
# EXACT_DTYPES (BF16), BENCH_ARGS (extra dit4j bench options, e.g. --profile).
# Results under $OUT: log.txt (everything), tests.log, dit4j.json, torch.json, compare.md, exact.txt, clocks.csv.
set -uo pipefail
what=${1:-all}
STAGE=${STAGE:-.device-wanbench}
OUT=${OUT:-/tmp/dit4j-out}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
# the JRE: $STAGE/jre.txz when staged there (keeps the carried tree small), else .device/jre.txz
JRE=$STAGE/jre.txz; [ -f "$JRE" ] || JRE=.device/jre.txz
[ -x /tmp/jre/bin/java ] || tar xf "$JRE" -C /tmp
J=(/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
if [ ! -d /tmp/d/src/diffusers ]; then mkdir -p /tmp/d && tar xzf .ref/diffusers-src.tgz -C /tmp/d; fi
export PYTHONPATH=/tmp/d/src
PY=$STAGE; [ -f "$PY/wan_torch_baseline.py" ] || PY=bench
LOG="$OUT/log.txt"
exec > >(tee -a "$LOG") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv,noheader
date -u +%FT%TZ
has() { [ "$what" = all ] || [[ ",$what," == *",$1,"* ]]; }
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,utilization.gpu --format=csv -lms 500 > "$OUT/clocks.csv" 2>/dev/null &
SMI=$!
trap 'kill $SMI 2>/dev/null' EXIT
MODELS=${MODELS:-wan-1.3b wan-14b}
iters() { [ "$1" = wan-14b ] && echo "${ITERS_14B:-5}" || echo "${ITERS_13B:-10}"; }

if has tests; then
  echo "== GPU tests (WanGpuTest, CudaOpsTest)"
  rm -rf /tmp/wt && mkdir -p /tmp/wt && (cd /tmp/wt && python3 -m zipfile -e "$OLDPWD/$STAGE/engine-tests.zip" .)
  timeout 150 "${J[@]}" -jar "$STAGE"/junit-platform-console-standalone-*.jar execute \
    --class-path "/tmp/wt:$STAGE/dit4j.jar" --select-class org.dit4j.engine.WanGpuTest --select-class org.dit4j.cuda.CudaOpsTest \
    --disable-banner --disable-ansi-colors --details=tree > "$OUT/tests.log" 2>&1
  grep -E "dit4j-engine|✘|tests (successful|failed|skipped)|Exception|expected" "$OUT/tests.log" | head -30
fi
if has bench; then
  for m in $MODELS; do
    echo "== dit4j bench --model $m"
    timeout $([ "$m" = wan-14b ] && echo 170 || echo 100) "${J[@]}" -jar "$STAGE/dit4j.jar" bench --model "$m" --iters "$(iters "$m")" \
      --warmup 2 --json "$OUT/dit4j-$m.json" ${BENCH_ARGS:-} 2>&1 | grep -v "incubator"
  done
fi
if has torch; then
  for m in $MODELS; do
    echo "== diffusers eager --model $m"
    timeout $([ "$m" = wan-14b ] && echo 150 || echo 100) python3 "$PY/wan_torch_baseline.py" --model "$m" --iters "$(iters "$m")" \
      --json "$OUT/torch-$m.json" 2>&1 | grep -vE "Warning|warn\("
  done
fi
if has exact; then
  echo "== full-size exactness vs diffusers: wan-1.3b, 832x480x${EXACT_FRAMES:-81}, random weights, 512 text tokens"
  rm -rf /tmp/wanref
  timeout 200 python3 "$PY/wan_torch_baseline.py" --model wan-1.3b --frames "${EXACT_FRAMES:-81}" --save-dir /tmp/wanref --iters 0 2>&1 \
    | grep -vE "Warning|warn\("
  timeout 150 "${J[@]}" -cp "$STAGE/dit4j.jar" org.dit4j.engine.bench.WanReferenceCheck \
    /tmp/wanref/diffusion_pytorch_model.safetensors /tmp/wanref/io.safetensors 2e-2 auto "${EXACT_DTYPES:-BF16}" 2>&1 \
    | grep -v incubator | tee "$OUT/exact.txt"
  rm -rf /tmp/wanref
fi
python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
d = [r for p in sorted(glob.glob(f"{out}/dit4j-wan-*.json")) for r in json.load(open(p))]
t = [json.load(open(p)) for p in sorted(glob.glob(f"{out}/torch-wan-*.json"))]
if d:
    json.dump(d, open(f"{out}/dit4j.json", "w"), indent=1)
if t:
    json.dump({"device": t[0]["device"], "torch": t[0]["torch"], "runs": [r for x in t for r in x["runs"]]},
              open(f"{out}/torch.json", "w"), indent=1)
for p in glob.glob(f"{out}/dit4j-wan-*.json") + glob.glob(f"{out}/torch-wan-*.json"):
    os.remove(p)
PY
if [ -f "$OUT/dit4j.json" ] || [ -f "$OUT/torch.json" ]; then
  python3 "$PY/wan_compare.py" $(ls "$OUT"/dit4j.json "$OUT"/torch.json 2>/dev/null) | tee "$OUT/compare.md"
fi
