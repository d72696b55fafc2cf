#!/usr/bin/env bash
# Multi-node Flux mesh on one 2-GPU host, two "nodes" of one GPU each (issue 6, multi-host):
#  T. first, the cuda NcclTest from .device-main/engine-tests.zip (incl. NcclCommunicator.initRanks; SKIP_TESTS=1 skips).
#  0. small random Flux.1-dev files (full widths: 3072 hidden, 24 heads, T5-XXL 4096; 2 double + 4 single blocks,
#     2 T5 layers; ~4 GB, ~40 s): RandomFluxFiles DIR 0 small; tokenizers from .device-main/tokenizers;
#  1. reference runs in one process: (a) 1 GPU, (b) --ulysses 2 on both GPUs (and, for pair 2, true CFG on 1 GPU and
#     --cfg-parallel 2);
#  2. the same meshes as two processes started together: CUDA_VISIBLE_DEVICES=0 … --nnodes 2 --node-rank 0
#     --master-addr 127.0.0.1:$PORT and CUDA_VISIBLE_DEVICES=1 … --node-rank 1 (node 0 writes the image);
#  3. a launch whose nodes disagree (node 1 with another --guidance) must fail on both nodes, naming the option;
#  4. compares the images with bench/png_compare.py: 2 nodes vs 1 process must be identical (same kernels and NCCL
#     collectives; a difference within bf16 noise, max |Δ| ≤ 8 and mean ≤ 0.5 levels, passes as "noise"); 1 GPU vs
#     the mesh is printed for information (bf16 mesh noise).
# Device call: kind nvidia-h100-x2, carry [".device", ".device-main"], command: timeout 590 bash bench/multinode-device.sh
#   (expected 5–8 min: JRE, NcclTest, ~4 GB of files, 5 generate runs of which 2 are two processes at once)
#   (.device-main/dit4j.jar built from a main that has the --nnodes options; .device/jre.txz the lead's JRE)
# Stage (here, in the main repo with this branch merged): bash bench/stage-device.sh (builds .device-main: dit4j.jar,
#   engine-tests.zip with the cuda test classes, the JUnit console launcher, tokenizers).
# Files in $OUT: gpu.txt, tests.log, files.log, runs.log (every run's output, node logs included), compare.json,
#   results.md (6 files; the images and per-run logs stay in $IMG=/tmp/mn-img, runs.log holds the logs)
# Prints "multinode: PASS" or "multinode: FAIL (…)" as its last line; exit status 0 on PASS.
# Knobs: RES=512 STEPS=8 PORT=29511 BACKEND=cuda (cpu: a dry run of this script's logic; the two-process runs then
#   fail at the rendezvous by design, as CPU nodes must share one JVM), JAR, TOK, MODEL (existing files: skip step 0),
#   GEN_TIMEOUT=240 (per run), NCCL_DEBUG (default WARN), EXTRA (more generate options, e.g. "--t5-length 32").
set -uo pipefail
OUT=${OUT:-/tmp/dit4j-multinode}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 NCCL_DEBUG=${NCCL_DEBUG:-WARN}
HERE=$(cd "$(dirname "$0")" && pwd)
JAR=${JAR:-.device-main/dit4j.jar}
TOK=${TOK:-.device-main/tokenizers}
BACKEND=${BACKEND:-cuda}
RES=${RES:-512}; STEPS=${STEPS:-8}; PORT=${PORT:-29511}; GEN_TIMEOUT=${GEN_TIMEOUT:-240}
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 )) s]"; }
FAILS=()
fail() { FAILS+=("$1"); echo "$(el) FAIL: $1" | tee -a "$OUT/runs.log"; }
: > "$OUT/runs.log"; : > "$OUT/compare.json"

if [ -n "${JAVA:-}" ]; then
  :
elif [ -x /tmp/jre/bin/java ]; then JAVA=/tmp/jre/bin/java
else timeout 120 tar xf .device/jre.txz -C /tmp && JAVA=/tmp/jre/bin/java
fi
J=("$JAVA" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
[ -f "$JAR" ] || { echo "multinode: FAIL (no jar at $JAR)"; exit 1; }
if [ "$BACKEND" = cuda ]; then
  NG=$(nvidia-smi -L 2>/dev/null | wc -l)
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvidia-smi topo -m; date -u +%FT%TZ; } > "$OUT/gpu.txt" 2>&1
  head -"$NG" "$OUT/gpu.txt"; echo "$NG GPU(s)"
  [ "$NG" -ge 2 ] || { echo "multinode: FAIL (needs 2 GPUs, found $NG)"; exit 1; }
  B0=(--backend cuda:0)
else
  echo "dry run on the CPU: the two-process runs are expected to fail at the rendezvous" | tee "$OUT/gpu.txt"
  B0=(--backend cpu)
fi

# ------------------------------------------------------------------ T. NCCL test (initRanks: local GPUs in one NCCL group)
if [ "$BACKEND" = cuda ] && [ "${SKIP_TESTS:-0}" != 1 ]; then
  if [ -f .device-main/engine-tests.zip ]; then
    rm -rf /tmp/mn-tc && mkdir -p /tmp/mn-tc && python3 -m zipfile -e .device-main/engine-tests.zip /tmp/mn-tc
    timeout 180 "${J[@]}" -jar .device-main/junit-platform-console-standalone-*.jar execute --class-path "/tmp/mn-tc:$JAR" \
      --select-class org.dit4j.cuda.NcclTest --disable-banner --disable-ansi-colors --details=tree > "$OUT/tests.log" 2>&1
    rc=$?
    grep -E "tests (successful|failed|found)" "$OUT/tests.log"
    [ "$rc" = 0 ] && grep -q "initRanksJoinsEveryLocalGpuInOneGroup" "$OUT/tests.log" || fail "NcclTest (exit $rc, see tests.log)"
  else
    echo "no .device-main/engine-tests.zip: NcclTest skipped" | tee "$OUT/tests.log"
  fi
fi

# ------------------------------------------------------------------ 0. model files
if [ -z "${MODEL:-}" ]; then
  MODEL=/tmp/mn-flux-small; rm -rf "$MODEL"
  echo "$(el) == small random Flux.1-dev files in $MODEL" | tee "$OUT/files.log"
  timeout 300 "${J[@]}" -cp "$JAR" org.dit4j.engine.bench.RandomFluxFiles "$MODEL" 0 small 2>&1 | grep -v incubator | tee -a "$OUT/files.log"
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "multinode: FAIL (RandomFluxFiles)"; exit 1; }
  mkdir -p "$MODEL/tokenizers/clip-vit-large-patch14" "$MODEL/tokenizers/t5-v1_1-xxl"
  cp "$TOK/clip/vocab.json" "$TOK/clip/merges.txt" "$MODEL/tokenizers/clip-vit-large-patch14/" && cp "$TOK/t5/tokenizer.json" "$MODEL/tokenizers/t5-v1_1-xxl/" \
    || { echo "multinode: FAIL (tokenizers missing under $TOK)"; exit 1; }
fi
IMG=${IMG:-/tmp/mn-img}; rm -rf "$IMG"; mkdir -p "$IMG"   # images and per-run logs (runs.log has the logs)
# shellcheck disable=SC2206
P=(--model "$MODEL" --prompt "a lighthouse on a cliff at dawn, oil painting" --width "$RES" --height "$RES" --steps "$STEPS" --seed 1 ${EXTRA:-})
NEG=(--negative-prompt "blurry, low quality" --true-cfg 4)

# ------------------------------------------------------------------ helpers
one() {   # label, out.png, generate args… : one process
  local label=$1 out=$2; shift 2
  echo "$(el) -- $label: dit4j generate $* --out $out" | tee -a "$OUT/runs.log"
  timeout "$GEN_TIMEOUT" "${J[@]}" -jar "$JAR" generate "${P[@]}" "${B0[@]}" "$@" --out "$out" > "$IMG/$label.log" 2>&1
  local rc=$?
  grep -vE "incubator|denoise \[" "$IMG/$label.log" | sed "s/^/  [$label] /" >> "$OUT/runs.log"
  echo "$(el) $label exit $rc" | tee -a "$OUT/runs.log"
  return $rc
}
nodes() {   # label, out.png, generate args… : two processes, one GPU each, started together
  local label=$1 out=$2; shift 2
  local port=$((PORT + NODE_RUNS)); NODE_RUNS=$((NODE_RUNS + 1))
  local M=(--nnodes 2 --master-addr "127.0.0.1:$port" --rendezvous-timeout 120)
  echo "$(el) -- $label: 2 nodes at 127.0.0.1:$port: dit4j generate $* ${M[*]} --node-rank 0|1" | tee -a "$OUT/runs.log"
  local B1=(--backend cpu); [ "$BACKEND" = cuda ] && B1=(--backend cuda:0)
  CUDA_VISIBLE_DEVICES=0 timeout "$GEN_TIMEOUT" "${J[@]}" -jar "$JAR" generate "${P[@]}" "${B1[@]}" "$@" "${M[@]}" --node-rank 0 \
    --out "$out" > "$IMG/$label-node0.log" 2>&1 &
  local p0=$!
  CUDA_VISIBLE_DEVICES=1 timeout "$GEN_TIMEOUT" "${J[@]}" -jar "$JAR" generate "${P[@]}" "${B1[@]}" "${NODE1_EXTRA[@]}" "$@" "${M[@]}" \
    --node-rank 1 --out "$out.node1.png" > "$IMG/$label-node1.log" 2>&1 &
  local p1=$!
  wait "$p0"; local rc0=$?
  wait "$p1"; local rc1=$?
  for n in 0 1; do grep -vE "incubator|denoise \[" "$IMG/$label-node$n.log" | sed "s/^/  [$label node $n] /" >> "$OUT/runs.log"; done
  echo "$(el) $label exit node0 $rc0 node1 $rc1" | tee -a "$OUT/runs.log"
  [ -e "$out.node1.png" ] && fail "$label: node 1 wrote an image (only node 0 should)"
  NODE_RC="$rc0 $rc1"
  [ "$rc0" = 0 ] && [ "$rc1" = 0 ]
}
compare() {   # name, a.png, b.png, [--max-abs N --mean-abs X] : appends a JSON line; status of png_compare
  local name=$1 a=$2 b=$3; shift 3
  local line
  line=$(timeout 300 python3 "$HERE/png_compare.py" "$a" "$b" "$@")
  local rc=$?
  [ -n "$line" ] || line="{\"error\": \"png_compare gave no output (exit $rc)\", \"ok\": false}"
  echo "{\"check\": \"$name\", \"result\": $line}" >> "$OUT/compare.json"
  echo "$(el) compare $name: $line" | tee -a "$OUT/runs.log"
  return $rc
}

NODE_RUNS=0; NODE1_EXTRA=()

# ------------------------------------------------------------------ 1-2. pairs: one process vs two nodes
one "1gpu" "$IMG/1gpu.png" || fail "1 GPU run"
one "ulysses2-1proc" "$IMG/ulysses2-1proc.png" --ulysses 2 || fail "--ulysses 2 in one process"
if nodes "ulysses2-2nodes" "$IMG/ulysses2-2nodes.png" --ulysses 2; then
  compare "ulysses2: 2 nodes vs 1 process" "$IMG/ulysses2-1proc.png" "$IMG/ulysses2-2nodes.png" --max-abs 8 --mean-abs 0.5 \
    || fail "ulysses2: 2 nodes differ from 1 process beyond bf16 noise"
else
  fail "ulysses2 on 2 nodes (exit $NODE_RC)"
fi
[ -e "$IMG/1gpu.png" ] && [ -e "$IMG/ulysses2-1proc.png" ] && compare "ulysses2 1 process vs 1 GPU (information: bf16 mesh noise)" \
  "$IMG/1gpu.png" "$IMG/ulysses2-1proc.png" --max-abs 255
one "cfg2-1proc" "$IMG/cfg2-1proc.png" "${NEG[@]}" --cfg-parallel 2 || fail "--cfg-parallel 2 in one process"
if nodes "cfg2-2nodes" "$IMG/cfg2-2nodes.png" "${NEG[@]}" --cfg-parallel 2; then
  compare "cfg2: 2 nodes vs 1 process" "$IMG/cfg2-1proc.png" "$IMG/cfg2-2nodes.png" --max-abs 8 --mean-abs 0.5 \
    || fail "cfg2: 2 nodes differ from 1 process beyond bf16 noise"
else
  fail "cfg-parallel 2 on 2 nodes (exit $NODE_RC)"
fi

# ------------------------------------------------------------------ 3. nodes that disagree fail together
NODE1_EXTRA=(--guidance 5)
if nodes "mismatch" "$IMG/mismatch.png" --ulysses 2; then
  fail "nodes with different --guidance both ran"
else
  for n in 0 1; do
    grep -q "node 1 runs a different job than node 0: .*guidance: node 0" "$IMG/mismatch-node$n.log" \
      || fail "mismatch: node $n's log does not name the differing option"
  done
fi
NODE1_EXTRA=()

# ------------------------------------------------------------------ results
{
  echo "## multi-node Flux (2 nodes × 1 GPU on one host), small random Flux.1-dev, ${RES}², $STEPS steps, backend $BACKEND"
  echo
  echo "| run | exit | denoise s | total s |"
  echo "|---|---|---|---|"
  for f in "$IMG"/*.log; do
    l=$(basename "$f" .log)
    den=$(grep -E "^\s*denoise\s+[0-9.]+ s" "$f" | tail -1 | awk '{print $2}')
    tot=$(grep -E "^\s*total\s+[0-9.]+ s" "$f" | tail -1 | awk '{print $2}')
    ex=$(grep -E "^\[[0-9]+ s\] ${l%-node?}( exit| exit node)" "$OUT/runs.log" | tail -1 | sed 's/.* exit //')
    echo "| $l | ${ex:-?} | ${den:--} | ${tot:--} |"
  done
  echo
  echo '```'
  cat "$OUT/compare.json"
  echo '```'
} > "$OUT/results.md"
cat "$OUT/results.md"
if [ ${#FAILS[@]} -eq 0 ]; then
  echo "$(el) multinode: PASS"
  exit 0
fi
echo "$(el) multinode: FAIL (${#FAILS[@]}: $(IFS='; '; echo "${FAILS[*]}"))"
exit 1
