#!/usr/bin/env bash
# On the GPU machine: Wan2.1 checks (issue #9; helper `wancheck`). Staged by bench/wan-check-stage.sh into .device-wancheck/.
#   bash .device-wancheck/wan-check-device.sh [tiny,fullcomp,files,full13b,full14b,clean]   (default: tiny)
# carry: .device (jre.txz), .device-wancheck, .ref (diffusers-src.tgz; "tiny" and "fullcomp" need it)
#   tiny     diffusers WanPipeline / UMT5EncoderModel / AutoencoderKLWan vs dit4j on the tiny random pipeline (TinyWan):
#            per-component rel-L2 and per-frame PSNR for dit4j cuda f32, cuda bf16 and cpu f32 (~3 min).
#            → $OUT/tiny.log (table), $OUT/tiny-results.json, $OUT/tiny-dit4j.log (every dit4j command and its output)
#   fullcomp umT5-XXL (transformers UMT5EncoderModel) and the Wan2.1 VAE (diffusers AutoencoderKLWan; decode of a
#            [1,16,5,32,32] latent, encode of a 17×256×256 video) at full size with random bf16 weights, reference float32
#            (and bf16 as yardstick) on the GPU, vs dit4j cuda f32 / cuda bf16 (writes t5, vae-diffusers first when missing)
#            → $OUT/fullcomp.log (table, then every dit4j command), $OUT/fullcomp-results.json
#   files    writes the full-size random files (umT5-XXL 11.4 GB, VAE, 14B 28.6 GB, 1.3B 2.8 GB) to $WANRAND (/tmp/wanrand);
#            present files are kept, so a later call on the same warm machine reuses them. → $OUT/files.txt
#   full13b  `dit4j generate` 1.3B, 832×480, 81 frames, $STEPS13 (50) steps, guidance 5, seed 1 (writes t5,vae,1.3B first
#            when missing) → $OUT/full13b.txt (stage times, peak GPU/host memory)
#   full14b  `dit4j generate` 14B, 640×640, 65 frames, $STEPS14 (20) steps, guidance 5, seed 1, Wan's default negative
#            prompt, i.e. text encode + 40 forwards + VAE decode (writes t5,vae,14B first when missing) → $OUT/full14b.txt
#   clean    removes $WANRAND
# Env: JAR (default .device-wancheck/dit4j.jar; .device-main/dit4j.jar works when built from a main with this branch),
#      GEN_EXTRA (more generate options, e.g. --no-compile), TINYFILES=1 (tiny random files and sizes: a smoke test of this script on a CPU machine), WANRAND, STEPS13, STEPS14, T_GEN (timeout per generate; default: what is left of BUDGET=585 s since the script started), REF_DEVICE (tiny reference: cpu|cuda).
set -uo pipefail
what=${1:-tiny}
OUT=${OUT:-/tmp/wancheck-out}; mkdir -p "$OUT"
HERE=$(cd "$(dirname "$0")" && pwd)
JAR=${JAR:-$HERE/dit4j.jar}
WANRAND=${WANRAND:-/tmp/wanrand}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
# JAVA_BIN / PYTHON / DIFFUSERS_SRC: set only to try the script elsewhere (e.g. on a CPU machine with CONFIGS=cpu:f32)
if [ -z "${JAVA_BIN:-}" ]; then [ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp; JAVA_BIN=/tmp/jre/bin/java; fi
JAVA="$JAVA_BIN --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC"
PYTHON=${PYTHON:-python3}
has() { [[ ",$what," == *",$1,"* ]]; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; date -u +%FT%TZ; df -h /tmp | tail -1; free -g | sed -n 2p; } > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

if has tiny; then
  echo "== tiny: diffusers vs dit4j (cuda f32, cuda bf16, cpu f32)"
  if [ -z "${DIFFUSERS_SRC:-}" ]; then
    [ -d /tmp/d/src/diffusers ] || { mkdir -p /tmp/d && tar xzf .ref/diffusers-src.tgz -C /tmp/d; }
    DIFFUSERS_SRC=/tmp/d/src
  fi
  rm -rf /tmp/wantiny /tmp/wancheck-tiny && mkdir -p /tmp/wantiny && tar xzf "$HERE/tiny.tgz" -C /tmp/wantiny
  PYTHONPATH=$DIFFUSERS_SRC timeout 420 $PYTHON "$HERE/wan_pipeline_reference.py" --tiny /tmp/wantiny --out /tmp/wancheck-tiny \
    --java "$JAVA" --jar "$JAR" --configs "${CONFIGS:-cuda:f32,cuda:bf16,cpu:f32}" --ref-device "${REF_DEVICE:-cpu}" --threads 8 \
    > "$OUT/tiny.log" 2>&1
  echo "rc $?" >> "$OUT/tiny.log"
  cp /tmp/wancheck-tiny/results.json "$OUT/tiny-results.json" 2>/dev/null
  cp /tmp/wancheck-tiny/dit4j.log "$OUT/tiny-dit4j.log" 2>/dev/null
  grep -vE "Warning|warn\(|deprecate|Loading|it/s\]" "$OUT/tiny.log" | tail -30
fi

# random full-size files; $1: parts (t5,vae,vae-diffusers,14B,1.3B); refuses (status 1) when the disk lacks room
random_files() {
  mkdir -p "$WANRAND/tokenizers/umt5-xxl"
  cp "$HERE/tokenizer.json" "$WANRAND/tokenizers/umt5-xxl/tokenizer.json"
  local free_gb need=2 p f; free_gb=$(df -BG --output=avail "$WANRAND" | tail -1 | tr -dc 0-9)
  for p in ${1//,/ }; do            # GB still to write: umT5-XXL 11.4, VAE 0.25, 14B 28.6, 1.3B 2.8 (+2 spare)
    case $p in t5) f=common/umt5-xxl-random.safetensors; g=12;; vae) f=common/wan_2.1_vae-random.safetensors; g=1;;
      vae-diffusers) f=common/vae-diffusers/diffusion_pytorch_model.safetensors; g=1;;
      14B) f=wan14b/wan2.1_t2v_14B-random.safetensors; g=29;; *) f=wan1.3b/wan2.1_t2v_1.3B-random.safetensors; g=3;; esac
    [ -f "$WANRAND/$f" ] || need=$((need + g))
  done
  echo "disk: ${free_gb} GB free in $WANRAND, about $need GB needed for what is missing of $1" | tee -a "$OUT/files.txt"
  if [ -z "${TINYFILES:-}" ] && [ "$free_gb" -lt "$need" ]; then
    echo "NOT ENOUGH DISK: free ${free_gb} GB < ${need} GB; run 'clean' (removes $WANRAND) or free /tmp, then retry" | tee -a "$OUT/files.txt"
    return 1
  fi
  local t0=$SECONDS
  timeout ${T_FILES:-540} $JAVA -cp "$JAR" org.dit4j.engine.bench.RandomWanFiles "$WANRAND" "$1" ${TINYFILES:+--tiny} 2>&1 | grep -v incubator | tee -a "$OUT/files.txt"
  local rc=${PIPESTATUS[0]}
  echo "files $1: rc $rc, $((SECONDS - t0)) s; $(df -h "$WANRAND" | tail -1)" | tee -a "$OUT/files.txt"
  return "$rc"
}

# $1 name, $2 transformer file, rest: generate options
generate() {
  local name=$1 tr=$2; shift 2
  [ -z "${TINYFILES:-}" ] || set -- --width 64 --height 64 --frames 9 --steps 2 --guidance 5     # script smoke test on a CPU
  local log="$OUT/$name.txt"
  {
    echo "== $name: dit4j generate, random full-size weights ($tr), $*"
    nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
  } > "$log"
  local t0=$SECONDS
  ( while sleep 2; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done ) > "/tmp/$name-smi.txt" 2>/dev/null &
  local smi=$!
  local limit=${T_GEN:-$(( ${BUDGET:-585} - SECONDS ))}     # what is left of the device's 10-minute command limit
  [ "$limit" -ge 60 ] || limit=60
  echo "timeout $limit s" >> "$log"
  timeout "$limit" $JAVA -jar "$JAR" generate \
    --model "$WANRAND/$tr,$WANRAND/common/umt5-xxl-random.safetensors,$WANRAND/common/wan_2.1_vae-random.safetensors" \
    --prompt "a lighthouse on a cliff at dawn, waves crashing against the rocks, cinematic, slow camera pan" \
    --seed 1 --out "/tmp/$name.mp4" "$@" ${GEN_EXTRA:-} 2>&1 | grep --line-buffered -v incubator | tr '\r' '\n' | grep --line-buffered -v '^\s*$' >> "$log"
  echo "rc ${PIPESTATUS[0]}, wall $((SECONDS - t0)) s" >> "$log"
  kill $smi 2>/dev/null
  echo "nvidia-smi max memory.used while running: $(sort -n "/tmp/$name-smi.txt" | tail -1) MiB (all processes, incl. CUDA context)" >> "$log"
  ls -l "/tmp/$name.mp4" >> "$log" 2>&1
  $PYTHON - "/tmp/$name.mp4" >> "$log" 2>&1 <<'EOF'
import struct, sys
# MP4 sanity: top-level boxes and the sample count of the video track (stsz)
d = open(sys.argv[1], "rb").read()
top, i = [], 0
while i + 8 <= len(d):
    n, t = struct.unpack(">I4s", d[i:i + 8]); top.append(t.decode("latin1"))
    if n == 1: n = struct.unpack(">Q", d[i + 8:i + 16])[0]
    i += n if n >= 8 else len(d)
j = d.find(b"stsz")
print("mp4 boxes", top, "samples", struct.unpack(">I", d[j + 12:j + 16])[0] if j > 0 else "?")
EOF
  rm -f "/tmp/$name.mp4"
  cat "$log"
}

if has fullcomp; then
  echo "== fullcomp: umT5-XXL and the Wan2.1 VAE at full size (random bf16 weights) vs transformers/diffusers"
  if [ -z "${DIFFUSERS_SRC:-}" ]; then
    [ -d /tmp/d/src/diffusers ] || { mkdir -p /tmp/d && tar xzf .ref/diffusers-src.tgz -C /tmp/d; }
    DIFFUSERS_SRC=/tmp/d/src
  fi
  if random_files t5,vae-diffusers; then
    rm -rf /tmp/wancheck-full
    PYTHONPATH=$DIFFUSERS_SRC timeout ${T_FULLCOMP:-$(( ${BUDGET:-585} - SECONDS ))} $PYTHON "$HERE/wan_pipeline_reference.py" \
      --full "$WANRAND" --out /tmp/wancheck-full --latent "${LATENT:-5,32,32}" --java "$JAVA" --jar "$JAR" \
      --configs "${FULL_CONFIGS:-cuda:f32,cuda:bf16}" --ref-device "${FULL_REF_DEVICE:-cuda}" --threads 8 --component-timeout 300 \
      > "$OUT/fullcomp.log" 2>&1
    echo "rc $?" >> "$OUT/fullcomp.log"
    cp /tmp/wancheck-full/results.json "$OUT/fullcomp-results.json" 2>/dev/null
    { echo; echo "==== dit4j commands and output"; cat /tmp/wancheck-full/dit4j.log; } >> "$OUT/fullcomp.log" 2>/dev/null
    grep -vE "Warning|warn\(|deprecate|Loading|it/s\]" "$OUT/fullcomp.log" | sed '/==== dit4j commands/q' | tail -12
  fi
fi
if has files; then random_files t5,vae,1.3B,14B; fi
if has full13b; then
  random_files t5,vae,1.3B && generate full13b wan1.3b/wan2.1_t2v_1.3B-random.safetensors --width 832 --height 480 --frames 81 --steps "${STEPS13:-50}" --guidance 5
fi
if has full14b; then
  random_files t5,vae,14B && generate full14b wan14b/wan2.1_t2v_14B-random.safetensors --width 640 --height 640 --frames 65 --steps "${STEPS14:-20}" --guidance 5
fi
if has clean; then rm -rf "$WANRAND"; df -h /tmp | tail -1; fi
