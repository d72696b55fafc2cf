#!/usr/bin/env bash
# Multi-GPU Flux on the 2-GPU (or 4-GPU) machine, staged by bench/stage-mgpu2.sh into .device-mgpu2/:
#  1. GPU tests: NCCL communicator (incl. q/k/v in one exchange), CUDA attentionWithLse/mergeAttention vs the CPU
#     (cuDNN stats, flash, reference, merge kernel, CUDA graph), tiny-Flux bf16 on 2 GPUs vs 1 GPU;
#  2. FluxParallelBench, full-size Flux.1-dev random weights, 1024² and 2048²: 1 GPU, Ulysses, Ring (now on the GPU's
#     own LSE/merge), CFG-parallel, USP 2×2 on 4 GPUs; per-forward ms eager/graph, peak GB per GPU, rel-L2 vs 1 GPU;
#  3. the whole pipeline on random full-size files (transformer, clip_l, t5xxl, ae) through `dit4j generate`,
#     28 steps at 1024² (PIPE_RES="1024 2048" adds 2048²): 1 GPU, --ulysses N, --ring N, 1 GPU true CFG and
#     --cfg-parallel 2 true CFG; one --verify-parallel run (--ring 2); per-GPU peak memory sampled with nvidia-smi.
# Device call: kind nvidia-h100-x2, carry [".device", ".device-mgpu2"], command: bash .device-mgpu2/mgpu-pipeline-device.sh
# Files in $OUT: gpu.txt tests.log bench.txt bench-1024.json bench-2048.json pipeline.log results.md [torch.txt torch.json]
#   (more than 8 files: all but results.md packed into all.tgz)
# Knobs: SKIP_TESTS=1, SKIP_BENCH=1, SKIP_PIPE=1, BENCH_RES="1024 2048", PIPE_RES="1024", RUNS=2, SKIP_VERIFY=1,
#   TEST_CLASSES="fully.qualified.Test …", BENCH_CONFIGS="ulysses=2;ring=2", BENCH_JAVA_OPTS="-Ddit4j.bench.profile=true"
#   (one eager forward per configuration and rank with every launch and NCCL call timed), SKIP_CFG=1 (no true-CFG runs; by default only up to CFG_MAX_RES=1024),
#   BENCH_CHUNKS="1,2,4" (each sequence-parallel mesh once per value: 1 = serial exchanges, c >= 2 = ring K/V prefetch +
#   Ulysses in c head chunks on the NCCL communication stream; unset = defaults), TORCH=1 (diffusers eager one-GPU
#   forward at BENCH_RES first; carry .ref too). The GPU count comes from nvidia-smi: the default BENCH_CONFIGS hold the
#   2-, 4- and 8-GPU layouts (issue 8: ulysses 8, ring 8, ring 2 × ulysses 4, cfg 2 × ulysses 4), the pipeline runs
#   --ulysses N, --ring N, --ring 2 --ulysses N/2 and --cfg-parallel 2 --ulysses N/2 for N ≥ 4.
set -uo pipefail
D=${D:-.device-mgpu2}
OUT=${OUT:-/tmp/dit4j-mgpu2}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 )) s]"; }
[ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp
J=(/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
NG=$(nvidia-smi -L | wc -l)
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvidia-smi topo -m; date -u +%FT%TZ; } > "$OUT/gpu.txt" 2>&1
head -$NG "$OUT/gpu.txt"; echo "$NG GPU(s)"

# ------------------------------------------------------------------ 1. tests
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  rm -rf /tmp/tc && mkdir -p /tmp/tc && python3 -m zipfile -e "$D/test-classes.zip" /tmp/tc
  timeout ${TESTS_TIMEOUT:-150} "${J[@]}" -jar "$D"/junit-platform-console-standalone-*.jar execute --class-path "/tmp/tc:$D/dit4j.jar" \
    $(for c in ${TEST_CLASSES:-org.dit4j.cuda.NcclCommunicatorTest org.dit4j.cuda.NcclOverlapTest org.dit4j.cuda.CudaAttentionLseTest org.dit4j.engine.parallel.FluxMultiGpuTest org.dit4j.engine.parallel.SequenceParallelOverlapGpuTest org.dit4j.engine.flux.ParallelFluxPipelineGpuTest}; do echo --select-class "$c"; done) \
    --disable-banner --disable-ansi-colors --details=tree > "$OUT/tests.log" 2>&1
  rc=$?; echo "$(el) tests exit $rc"
  grep -E "\[dit4j-|✘" "$OUT/tests.log" | head -30
  sed -n '/^Failures (/,/^Test run finished/p' "$OUT/tests.log" | grep -vE "^\s+(org\.junit|java\.base|app//org\.junit)" | head -40
  grep -E "tests (successful|failed|skipped|found)|containers failed" "$OUT/tests.log"
fi

# ------------------------------------------------------------------ 1b. diffusers eager single-GPU baseline (TORCH=1)
if [ "${TORCH:-0}" = 1 ]; then
  # needs .ref (carried) with the diffusers source archive; one GPU, eager, the resolutions of BENCH_RES
  if [ ! -d /tmp/d/src/diffusers ]; then mkdir -p /tmp/d && tar xzf .ref/diffusers-src.tgz -C /tmp/d; fi
  echo "$(el) == diffusers eager baseline (one GPU)" | tee "$OUT/torch.txt"
  PYTHONPATH=/tmp/d/src timeout ${TORCH_TIMEOUT:-300} python3 bench/flux_torch_baseline.py --resolutions ${BENCH_RES:-1024 2048} \
    --iters 3 --warmup 1 --json "$OUT/torch.json" 2>&1 | grep -vE "Warning|warn\(" | tee -a "$OUT/torch.txt" | tail -4
fi

# ------------------------------------------------------------------ 2. forward benchmark
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  # configs whose world size differs from the GPU count are skipped by the bench
  CONFIGS=${BENCH_CONFIGS:-"ulysses=2;ring=2;cfg=2;ring=2,ulysses=2;ulysses=4;ring=4;cfg=2,ulysses=2;ulysses=8;ring=8;ring=2,ulysses=4;cfg=2,ulysses=4"}
  : > "$OUT/bench.txt"
  for r in ${BENCH_RES:-1024 2048}; do
    it=5; [ "$r" -ge 2048 ] && it=3
    echo "$(el) == FluxParallelBench ${r}² ($CONFIGS)" | tee -a "$OUT/bench.txt"
    CH=(); [ -n "${BENCH_CHUNKS:-}" ] && CH=(-Ddit4j.bench.chunks="$BENCH_CHUNKS")
    timeout ${BENCH_TIMEOUT:-170} "${J[@]}" ${BENCH_JAVA_OPTS:-} "${CH[@]}" -cp "$D/dit4j.jar" org.dit4j.engine.bench.FluxParallelBench "$r" "$it" "$CONFIGS" \
      "$OUT/bench-$r.json" 2>&1 | grep -v incubator | tee -a "$OUT/bench.txt" | grep -E "^\||rank 0|error|Exception"
    echo "bench ${r}² exit ${PIPESTATUS[0]}" | tee -a "$OUT/bench.txt"
  done
fi

# ------------------------------------------------------------------ 3. whole pipeline
peak_start() { nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 250 > /tmp/mgpu2-mem.csv 2>/dev/null & SAMPLER=$!; }
peak_stop() {
  kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null
  python3 - <<'PY'
import collections
m = collections.defaultdict(int)
for line in open('/tmp/mgpu2-mem.csv'):
    p = [x.strip() for x in line.split(',')]
    if len(p) == 2 and p[1].isdigit(): m[int(p[0])] = max(m[int(p[0])], int(p[1]))
print("per-GPU peak memory (nvidia-smi, MiB): " + " ".join(f"gpu{i}={m[i]}" for i in sorted(m)))
PY
}
if [ "${SKIP_PIPE:-0}" != 1 ]; then
  F=/tmp/fluxrand; rm -rf "$F" /tmp/mgpu2-img; mkdir -p /tmp/mgpu2-img
  echo "$(el) == random full-size Flux.1-dev files" | tee "$OUT/pipeline.log"
  timeout 240 "${J[@]}" -cp "$D/dit4j.jar" org.dit4j.engine.bench.RandomFluxFiles "$F" 2>&1 | grep -v incubator | tee -a "$OUT/pipeline.log"
  mkdir -p "$F/tokenizers/clip-vit-large-patch14" "$F/tokenizers/t5-v1_1-xxl"
  cp "$D/tokenizers/clip/vocab.json" "$D/tokenizers/clip/merges.txt" "$F/tokenizers/clip-vit-large-patch14/"
  cp "$D/tokenizers/t5/tokenizer.json" "$F/tokenizers/t5-v1_1-xxl/"
  P=(--model "$F" --prompt "a lighthouse on a cliff at dawn, oil painting" --steps 28 --seed 1)
  NEG=(--negative-prompt "blurry, low quality" --true-cfg 4)
  runs=${RUNS:-2}
  gen() {   # label, generate args...
    local label=$1; shift
    echo "$(el) -- $label: dit4j generate $*" | tee -a "$OUT/pipeline.log"
    peak_start
    timeout ${GEN_TIMEOUT:-200} "${J[@]}" -jar "$D/dit4j.jar" generate "${P[@]}" "$@" 2>&1 | grep -vE "incubator|denoise \[|^\s*$" \
      | tee -a "$OUT/pipeline.log" | grep -E "denoise|total|verify|rel-L2|error|Exception|mesh"
    echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/pipeline.log"
    peak_stop | tee -a "$OUT/pipeline.log"
    echo "== end $label" >> "$OUT/pipeline.log"
  }
  for r in ${PIPE_RES:-1024}; do
    S=(--width "$r" --height "$r" --runs "$runs")
    gen "${r} 1 GPU" "${S[@]}" --out /tmp/mgpu2-img/1gpu-$r.png
    gen "${r} ulysses $NG" "${S[@]}" --ulysses "$NG" --out /tmp/mgpu2-img/ulysses-$r.png
    gen "${r} ring $NG" "${S[@]}" --ring "$NG" --out /tmp/mgpu2-img/ring-$r.png
    if [ "$NG" -ge 4 ]; then
      gen "${r} usp 2x2" "${S[@]}" --ring 2 --ulysses $((NG / 2)) --out /tmp/mgpu2-img/usp-$r.png
    fi
    { [ "${SKIP_CFG:-0}" = 1 ] || [ "$r" -gt "${CFG_MAX_RES:-1024}" ]; } && continue
    gen "${r} 1 GPU true CFG" "${S[@]}" "${NEG[@]}" --out /tmp/mgpu2-img/cfg1-$r.png
    if [ "$NG" -ge 4 ]; then
      gen "${r} cfg-parallel 2 x ulysses $((NG / 2)) true CFG" "${S[@]}" "${NEG[@]}" --cfg-parallel 2 --ulysses $((NG / 2)) --out /tmp/mgpu2-img/cfg2-$r.png
    else
      gen "${r} cfg-parallel 2 true CFG" "${S[@]}" "${NEG[@]}" --cfg-parallel 2 --out /tmp/mgpu2-img/cfg2-$r.png
    fi
  done
  if [ "${SKIP_VERIFY:-0}" != 1 ]; then
    gen "1024 verify ring 2" --width 1024 --height 1024 --ring 2 --verify-parallel --out /tmp/mgpu2-img/verify.png
  fi
  rm -rf "$F"
fi

# ------------------------------------------------------------------ results table
python3 - "$OUT" <<'PY' > "$OUT/results.md"
import json, os, re, sys
out = sys.argv[1]
print("## FluxParallelBench (one forward, full-size Flux.1-dev, random bf16 weights)\n")
print("| resolution | configuration | eager ms | graph ms | speedup eager | speedup graph | peak GB/GPU | rel-L2 vs 1 GPU |")
print("|---|---|---|---|---|---|---|---|")
for r in (1024, 2048):
    f = os.path.join(out, f"bench-{r}.json")
    if not os.path.exists(f): continue
    try: rows = json.load(open(f))
    except Exception as e: print(f"| {r} | unreadable {f}: {e} |"); continue
    if isinstance(rows, dict): rows = rows.get("results", [])
    base = next((x for x in rows if x["config"] == "1 GPU"), None)
    basecfg = next((x for x in rows if x["config"].startswith("1 GPU, true CFG")), None)
    for x in rows:
        cfgrow = "cfg2" in x["config"] or "CFG" in x["config"]
        b = basecfg if cfgrow and basecfg else base
        def sp(k):
            try: return f"{b[k] / x[k]:.2f}×"
            except Exception: return "-"
        fmt = lambda v: "-" if v is None or (isinstance(v, float) and v != v) else (f"{v:.1f}" if isinstance(v, (int, float)) else str(v))
        print(f"| {r} | {x['config']} | {fmt(x.get('eager_ms'))} | {fmt(x.get('graph_ms'))} | {sp('eager_ms')} | {sp('graph_ms')} | {fmt(x.get('peak_gb'))} | {x.get('rel_l2')} |")
log = os.path.join(out, "pipeline.log")
if os.path.exists(log):
    print("\n## dit4j generate, 28 steps, random full-size files (last run of each invocation)\n")
    print("| run | denoise s | total s | it/s | per-GPU peak MiB (nvidia-smi) | exit | note |")
    print("|---|---|---|---|---|---|---|")
    text = open(log).read()
    for block in re.split(r"^\[\d+ s\] -- ", text, flags=re.M)[1:]:
        label = block.split(":", 1)[0]
        den = re.findall(r"^\s*denoise\s+([\d.]+) s", block, re.M)
        tot = re.findall(r"^\s*total\s+([\d.]+) s", block, re.M)
        its = re.findall(r"(\d+) steps, ([\d.]+) it/s", block)
        peak = re.findall(r"per-GPU peak memory \(nvidia-smi, MiB\): (.*)", block)
        ex = re.findall(r"^exit (\d+)", block, re.M)
        ver = re.findall(r"verify-parallel: .*", block)
        print(f"| {label} | {den[-1] if den else '-'} | {tot[-1] if tot else '-'} | {its[-1][1] if its else '-'} | "
              f"{peak[-1] if peak else '-'} | {ex[-1] if ex else '?'} | {ver[-1] if ver else ''} |")
PY
cat "$OUT/results.md"
echo "$(el) done"
# at most 8 files come back from a device call: with more, everything but results.md goes into one all.tgz
if [ "$(find "$OUT" -maxdepth 1 -type f | wc -l)" -gt 8 ]; then
  ( cd "$OUT" && tar czf /tmp/mgpu-all.tgz --exclude=results.md . && find . -maxdepth 1 -type f ! -name results.md -delete \
    && mv /tmp/mgpu-all.tgz all.tgz )
fi
