#!/usr/bin/env bash
# Builds this worktree and stages what bench/mgpu-pipeline-device.sh needs into <main>/.device-mgpu2/ (git-ignored):
# the CLI fat jar, the core/cuda/engine test classes, the JUnit console launcher, the tokenizers of the random
# full-size pipeline (real CLIP vocabulary, the small trained T5 tokenizer of the tests) and the device script.
#   bash bench/stage-mgpu2.sh [/work/main]
# Device call: kind nvidia-h100-x2, carry [".device", ".device-mgpu2"], command: bash .device-mgpu2/mgpu-pipeline-device.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=${1:-/work/main}
. scripts/find-jdk.sh
./mvnw -o -B -q -ntp -pl cli -am package -DskipTests
./mvnw -o -B -q -ntp -pl engine,cuda,server -am test-compile
D="$MAIN/.device-mgpu2"
rm -rf "$D" && mkdir -p "$D/tokenizers/clip" "$D/tokenizers/t5"
cp cli/target/dit4j.jar bench/mgpu-pipeline-device.sh "$D/"
tmp=$(mktemp -d)
for m in core cuda engine server; do cp -r "$m/target/test-classes/." "$tmp/"; done
(cd "$tmp" && python3 -m zipfile -c "$D/test-classes.zip" .)
rm -rf "$tmp"
cp "$(ls ~/.m2/repository/org/junit/platform/junit-platform-console-standalone/*/junit-platform-console-standalone-*.jar | grep -v sources | tail -1)" "$D/"
SHARED=$(cd "$MAIN/.." && pwd)/shared
cp "$SHARED/data/tokenizers/clip-vit-l-14/vocab.json" "$SHARED/data/tokenizers/clip-vit-l-14/merges.txt" "$D/tokenizers/clip/"
gunzip -c models/src/test/resources/tokenizer/trained-nfkc/tokenizer.json.gz > "$D/tokenizers/t5/tokenizer.json"
[ -f "$MAIN/.device/jre.txz" ] || echo "WARNING: $MAIN/.device/jre.txz is missing (the lead builds it); the device script needs it"
ls -la "$D"
du -sh "$D"
