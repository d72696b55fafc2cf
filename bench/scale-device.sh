#!/usr/bin/env bash
# The N-GPU scaling run of issue 8 (also usable on 2 or 4 GPUs), staged by bench/stage-scale.sh into .device-scale/.
# The GPU count N comes from nvidia-smi; every layout is checked on CPU threads in CI (FluxParallelTest,
# ParallelWanPipelineTest: ulysses 8, ring 8, ring 2 × ulysses 4, cfg 2 × ulysses 4).
#   bash .device-scale/scale-device.sh flux|wanbench|wan14b-1gpu|wan14b-mesh
# On 8 GPUs the flux part may not fit one call: run it as BENCH_RES=1024 PIPE_RES=1024, then BENCH_RES=2048 PIPE_RES=2048
# SKIP_TESTS=1 (knobs of mgpu-pipeline-device.sh pass through: SKIP_TESTS, SKIP_PIPE, SKIP_CFG, BENCH_CONFIGS, …).
# Results under $OUT (one part per device call: each fits the 10-minute command limit):
#   flux:        what mgpu-pipeline-device.sh writes (bench-1024/2048.json, pipeline.log, results.md, torch.json, …; packed
#                into all.tgz beyond 8 files) — 1 GPU vs ulysses N, ring N, ring 2 × ulysses N/2, cfg 2 × ulysses N/2
#   wanbench:    wan-bench.txt / wan-bench.json (WanParallelBench wan-14b) and wan-torch.txt / wan-torch.json (diffusers)
#   wan14b-*:    full14b.txt (seconds per stage, it/s, peak memory), files.txt, gpu.txt
set -uo pipefail
part=${1:?"part: flux | wanbench | wan14b-1gpu | wan14b-mesh"}
S=.device-scale
OUT=${OUT:-/tmp/dit4j-scale}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
[ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp
J=(/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
N=$(nvidia-smi -L | wc -l)
half=$(( N / 2 )); [ "$half" -ge 1 ] || half=1
echo "$N GPU(s): $(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | tr -s ' ')"
diffusers() { [ -d /tmp/d/src/diffusers ] || { mkdir -p /tmp/d && tar xzf .ref/diffusers-src.tgz -C /tmp/d; }; }
case $part in
  flux)
    # every layout for N GPUs (the bench skips configs of another world size)
    D=$S TORCH=1 SKIP_VERIFY=1 BENCH_RES="${BENCH_RES:-1024 2048}" PIPE_RES="${PIPE_RES:-1024 2048}" RUNS=${RUNS:-2} \
      BENCH_TIMEOUT=${BENCH_TIMEOUT:-200} OUT="$OUT" bash "$S/mgpu-pipeline-device.sh"
    ;;
  wanbench)
    case $N in
      1) CONFIGS="" ;;
      2) CONFIGS="ulysses=2;cfg=2" ;;
      4) CONFIGS="ulysses=4;cfg=2,ulysses=2;ring=2,ulysses=2" ;;
      *) CONFIGS="ulysses=$N;cfg=2,ulysses=$half;ring=2,ulysses=$half;cfg=2,ring=2,ulysses=$(( N / 4 ))" ;;
    esac
    CONFIGS=${WAN_CONFIGS:-$CONFIGS}
    echo "== WanParallelBench wan-14b 640×640×65 ($CONFIGS)" | tee "$OUT/wan-bench.txt"
    timeout ${WAN_BENCH_TIMEOUT:-330} "${J[@]}" -cp "$S/dit4j.jar" org.dit4j.engine.bench.WanParallelBench wan-14b "${ITERS:-3}" "$CONFIGS" \
      "$OUT/wan-bench.json" 2>&1 | grep -v incubator | tee -a "$OUT/wan-bench.txt" | grep -E "^\||error|Exception"
    echo "wan bench exit ${PIPESTATUS[0]}" | tee -a "$OUT/wan-bench.txt"
    if [ "${SKIP_TORCH:-0}" != 1 ]; then
      diffusers
      echo "== diffusers eager Wan2.1-14B forward, one GPU" | tee "$OUT/wan-torch.txt"
      PYTHONPATH=/tmp/d/src timeout ${WAN_TORCH_TIMEOUT:-200} python3 bench/wan_torch_baseline.py --model wan-14b --iters 3 --warmup 1 \
        --json "$OUT/wan-torch.json" 2>&1 | grep -vE "Warning|warn\(" | tee -a "$OUT/wan-torch.txt" | tail -3
    fi
    ;;
  wan14b-1gpu|wan14b-mesh)
    extra=""
    [ "$part" = wan14b-mesh ] && extra="--cfg-parallel 2 --ulysses $half"
    [ "$N" -ge 2 ] || extra=""
    echo "== Wan2.1-14B 640×640×65, 20 steps, CFG 5: dit4j generate ${extra:-(one GPU)}"
    JAR=$S/dit4j.jar GEN_EXTRA="$extra ${GEN_EXTRA:-}" OUT="$OUT" BUDGET=${BUDGET:-585} bash "$S/wan-check-device.sh" full14b
    ;;
  *) echo "unknown part $part (flux | wanbench | wan14b-1gpu | wan14b-mesh)"; exit 2 ;;
esac
