#!/usr/bin/env bash
# On the GPU machine: Flux's text encoders and VAE against their references at full size (issue #4) —
# transformers' CLIPTextModel (CLIP-L) and T5EncoderModel (T5-XXL v1.1), diffusers' AutoencoderKL (Flux VAE, decode of
# a 128² latent to 1024², encode of a 1024² image), same random weights, dit4j on CUDA in F32 and BF16 vs the
# reference's fp32 output. Staged by bench/stage-components.sh into .device-fluxcheck/ (see bench/NOTES-components.md).
#   bash .device-fluxcheck/flux-components-device.sh [size=full|tiny] [parts=clip,vae,t5]
# Device call: carry [".device", ".device-fluxcheck", ".ref"]. Results under $OUT: gpu.txt, reference.log,
# reference.json, check.log, check.json, summary.txt. Exit status 0 only when every comparison passes.
# Whole run ≤ DEADLINE seconds (default 560; each step's timeout is cut to what is left). Local dry run at the tiny size
# (CPU): BACKEND=cpu PY_DEVICE=cpu PYTHON=/tmp/tvenv/bin/python JAVA=$JAVA_HOME/bin/java JAR=... bash ... tiny
set -uo pipefail
size=${1:-full}
parts=${2:-clip,vae,t5}
OUT=${OUT:-/tmp/fluxcheck-out}; mkdir -p "$OUT"
HERE=$(cd "$(dirname "$0")" && pwd)
BACKEND=${BACKEND:-cuda}; PY_DEVICE=${PY_DEVICE:-cuda}; PYTHON=${PYTHON:-python3}; DEADLINE=${DEADLINE:-560}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
if [ -z "${JAVA:-}" ]; then
  [ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp
  JAVA=/tmp/jre/bin/java
fi
if [ -z "${PYTHONPATH:-}" ]; then
  if [ ! -d /tmp/d/src/diffusers ]; then mkdir -p /tmp/d && tar xzf .ref/diffusers-src.tgz -C /tmp/d; fi
  export PYTHONPATH=/tmp/d/src
fi
J=("$JAVA" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
JAR=${JAR:-$HERE/dit4j.jar}
PY="$HERE/flux_components_reference.py"
[ -f "$PY" ] || PY=bench/flux_components_reference.py
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1
date -u +%FT%TZ >> "$OUT/gpu.txt"
"$PYTHON" -c "import torch, transformers, diffusers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'diffusers', diffusers.__version__)" >> "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
: > "$OUT/reference.log"; : > "$OUT/check.log"; : > "$OUT/summary.txt"
status=0
start=$(date +%s)
# the smaller of $1 and the seconds left before DEADLINE
left() { local r=$((DEADLINE - ($(date +%s) - start))); echo $(( r < 1 ? 1 : (r < $1 ? r : $1) )); }
for p in ${parts//,/ }; do
  case $p in
    t5) pt=240; jt=180; jparts=t5 ;;
    clip) pt=90; jt=60; jparts=clip ;;
    vae) pt=150; jt=120; jparts=vae-decode,vae-encode ;;
    *) echo "unknown part $p (expected clip, vae, t5)" | tee -a "$OUT/summary.txt"; status=1; continue ;;
  esac
  if [ "$(left 999)" -lt 30 ]; then echo "$p: skipped, less than 30 s left of DEADLINE $DEADLINE" | tee -a "$OUT/summary.txt"; status=1; continue; fi
  D=/tmp/fluxcomp/$p; rm -rf "$D"; mkdir -p "$D"
  t0=$(date +%s)
  echo "== reference $p ($size)" | tee -a "$OUT/reference.log"
  timeout "$(left $pt)" "$PYTHON" "$PY" --out "$D" --size "$size" --device "$PY_DEVICE" --parts "$p" 2>&1 \
    | grep -vE "Warning|warn\(|should be kept in float32" >> "$OUT/reference.log"
  rc=${PIPESTATUS[0]}
  t1=$(date +%s)
  echo "reference $p: rc $rc in $((t1 - t0)) s" | tee -a "$OUT/reference.log" "$OUT/summary.txt"
  [ -f "$D/reference.json" ] && cp "$D/reference.json" "$OUT/reference-$p.json"
  if [ "$rc" != 0 ]; then status=1; tail -20 "$OUT/reference.log"; rm -rf "$D"; continue; fi
  echo "== dit4j $p" | tee -a "$OUT/check.log"
  timeout "$(left $jt)" "${J[@]}" -cp "$JAR" org.dit4j.engine.bench.FluxComponentCheck "$D" "$BACKEND" F32,BF16 "$jparts" "$OUT/check-$p.json" 2>&1 \
    | grep -v incubator >> "$OUT/check.log"
  rc=${PIPESTATUS[0]}
  echo "dit4j $p: rc $rc in $(( $(date +%s) - t1 )) s" | tee -a "$OUT/check.log" "$OUT/summary.txt"
  [ "$rc" != 0 ] && status=1
  rm -rf "$D"
done
# one JSON for all parts (check.json, reference.json), the per-part files removed (at most 8 files come back)
"$PYTHON" - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
for kind in ("check", "reference"):
    merged = {}
    for p in ("clip", "vae", "t5"):
        f = os.path.join(out, f"{kind}-{p}.json")
        if os.path.exists(f):
            with open(f) as fh:
                merged[p] = json.load(fh)
            os.remove(f)
    with open(os.path.join(out, f"{kind}.json"), "w") as fh:
        json.dump(merged, fh, indent=1)
EOF
grep -E "^[a-z0-9.]+ +(F32|BF16) " "$OUT/check.log" >> "$OUT/summary.txt"
grep -E "^=> " "$OUT/check.log" >> "$OUT/summary.txt"
echo "total $(( $(date +%s) - start )) s, status $status" >> "$OUT/summary.txt"
cat "$OUT/summary.txt"
exit $status
