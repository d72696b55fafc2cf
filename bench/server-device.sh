#!/usr/bin/env bash
# On the GPU machine: `dit4j serve` on a ComfyUI-style models tree of random full-size Flux.1-dev files, driven by
# bench/comfy_api_drive.py (python3 stdlib) through models.md §4.3's API workflow and its SamplerCustomAdvanced variant,
# each plain and with TeaCache / MagCache / CompileModel / ParallelUNETLoader (num_gpus = ulysses = min(2, GPUs)),
# at 1024², 28 steps. Staged by bench/stage-server.sh. Results under $OUT:
#   server-drive.json (per prompt: wall time, status, image from /view, WebSocket events), drive.txt, serve.log,
#   first.png (one image that came back).
#   bash bench/server-device.sh [size] [steps]
set -uo pipefail
size=${1:-1024}
steps=${2:-28}
OUT=${OUT:-/tmp/dit4j-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
S=.device-server
[ -x /tmp/jre/bin/java ] || tar xf .device/jre.txz -C /tmp
J=(/tmp/jre/bin/java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -XX:+UseParallelGC)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
GPUS=$(nvidia-smi -L | wc -l); PG=$(( GPUS >= 2 ? 2 : 1 ))
echo "GPUs: $GPUS; ParallelUNETLoader variant: num_gpus=$PG ulysses=$PG" | tee -a "$OUT/gpu.txt"

echo "== random full-size Flux.1-dev files as a ComfyUI models tree"
R=/tmp/fluxrand D=/tmp/comfymodels
rm -rf "$R" "$D" /tmp/comfyout
timeout 300 "${J[@]}" -cp "$S/dit4j.jar" org.dit4j.engine.bench.RandomFluxFiles "$R" 2>&1 | grep -v incubator
mkdir -p "$D/diffusion_models" "$D/text_encoders" "$D/vae" "$D/tokenizers/clip-vit-large-patch14" "$D/tokenizers/t5-v1_1-xxl"
mv "$R/flux1-dev-random.safetensors" "$D/diffusion_models/"
mv "$R/clip_l.safetensors" "$R/t5xxl_random.safetensors" "$D/text_encoders/"
mv "$R/ae.safetensors" "$D/vae/"
cp "$S/tokenizers/clip/vocab.json" "$S/tokenizers/clip/merges.txt" "$D/tokenizers/clip-vit-large-patch14/"
cp "$S/tokenizers/t5/tokenizer.json" "$D/tokenizers/t5-v1_1-xxl/"

echo "== dit4j serve"
timeout 720 "${J[@]}" -jar "$S/dit4j.jar" serve --port 8188 --models-dir "$D" --output-dir /tmp/comfyout --backend cuda \
  > "$OUT/serve.log" 2>&1 &
SP=$!
up=0
for i in $(seq 120); do
  if python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8188/system_stats", timeout=2)' 2>/dev/null; then up=1; break; fi
  kill -0 $SP 2>/dev/null || break
  sleep 1
done
if [ $up = 1 ]; then
  echo "== ComfyUI API driver (${size}², $steps steps)"
  timeout 540 python3 bench/comfy_api_drive.py --url http://127.0.0.1:8188 --unet flux1-dev-random.safetensors \
    --t5 t5xxl_random.safetensors --clip clip_l.safetensors --vae ae.safetensors --size "$size" --steps "$steps" \
    --gpus "$PG" --timeout 240 --json "$OUT/server-drive.json" 2>&1 | tee "$OUT/drive.txt"
  f=$(ls /tmp/comfyout/drive_*.png 2>/dev/null | head -1); [ -n "$f" ] && cp "$f" "$OUT/first.png"
else
  echo "server did not come up; see serve.log" | tee "$OUT/drive.txt"
fi
kill $SP 2>/dev/null; wait $SP 2>/dev/null
grep -vE "incubator" "$OUT/serve.log" | tail -40
rm -rf "$R" "$D" /tmp/comfyout
