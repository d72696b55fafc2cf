#!/usr/bin/env bash
# Stages the N-GPU scaling run (issue 8; any GPU count: 2, 4, 8) into <main>/.device-scale/ (git-ignored): the CLI fat
# jar, the core/cuda/engine/server test classes, the JUnit console launcher, the Flux tokenizers (real CLIP vocabulary,
# the tests' small T5 tokenizer), the umT5 tokenizer for the Wan random files, and the device scripts.
#   bash bench/stage-scale.sh [/work/main]
# Device calls (kind nvidia-h100-x8 / -x4 / -x2, carry [".device", ".device-scale", ".ref"]), one part per call:
#   bash .device-scale/scale-device.sh flux        Flux forward + pipeline 1024²/2048² on 1 GPU and the N-GPU layouts,
#                                                  diffusers eager one-GPU forward baseline (≈ 8–10 min)
#   bash .device-scale/scale-device.sh wanbench    Wan2.1-14B forward 640×640×65 on 1 GPU and the N-GPU layouts,
#                                                  diffusers eager one-GPU forward baseline (≈ 4–6 min)
#   bash .device-scale/scale-device.sh wan14b-1gpu Wan2.1-14B 640×640×65, 20 steps, CFG 5, `dit4j generate` on 1 GPU
#                                                  (writes ≈ 42 GB of random files first; ≈ 6–8 min)
#   bash .device-scale/scale-device.sh wan14b-mesh the same with --cfg-parallel 2 --ulysses N/2 (files reused on a warm
#                                                  machine, else written again)
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=${1:-/work/main}
. scripts/find-jdk.sh
./mvnw -o -B -q -ntp -pl cli -am package -DskipTests
./mvnw -o -B -q -ntp -pl engine,cuda,server -am test-compile
S="$MAIN/.device-scale"
rm -rf "$S" && mkdir -p "$S/tokenizers/clip" "$S/tokenizers/t5"
cp cli/target/dit4j.jar bench/mgpu-pipeline-device.sh bench/wan-check-device.sh bench/scale-device.sh "$S/"
tmp=$(mktemp -d)
for m in core cuda engine server; do cp -r "$m/target/test-classes/." "$tmp/"; done
(cd "$tmp" && python3 -m zipfile -c "$S/test-classes.zip" .)
rm -rf "$tmp"
cp "$(ls ~/.m2/repository/org/junit/platform/junit-platform-console-standalone/*/junit-platform-console-standalone-*.jar | grep -v sources | tail -1)" "$S/"
SHARED=$(cd "$MAIN/.." && pwd)/shared
cp "$SHARED/data/tokenizers/clip-vit-l-14/vocab.json" "$SHARED/data/tokenizers/clip-vit-l-14/merges.txt" "$S/tokenizers/clip/"
gunzip -c models/src/test/resources/tokenizer/trained-nfkc/tokenizer.json.gz > "$S/tokenizers/t5/tokenizer.json"
cp "$S/tokenizers/t5/tokenizer.json" "$S/tokenizer.json"      # wan-check-device.sh's umT5 tokenizer for the random files
[ -f "$MAIN/.device/jre.txz" ] || echo "WARNING: $MAIN/.device/jre.txz is missing (bash bench/device-jre.sh builds it)"
[ -f "$MAIN/.ref/diffusers-src.tgz" ] || echo "WARNING: $MAIN/.ref/diffusers-src.tgz is missing (the diffusers baselines need it)"
du -sh "$S"
