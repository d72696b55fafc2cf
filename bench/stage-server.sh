#!/usr/bin/env bash
# Builds dit4j here and stages what bench/server-device.sh needs on the GPU machine into .device-server/ (git-ignored):
# the CLI fat jar, the ComfyUI API driver's tokenizers (the real CLIP vocabulary from ../shared, the small trained T5
# tokenizer of the tokenizer tests). Also needs .device/jre.txz (../shared/tools/device-jre.sh).
# Device call: carry [".device", ".device-server"], command: bash bench/server-device.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/find-jdk.sh
./mvnw -B -q -ntp -o -pl cli -am package -DskipTests
rm -rf .device-server && mkdir -p .device-server/tokenizers/clip .device-server/tokenizers/t5
cp cli/target/dit4j.jar .device-server/
cp ../shared/data/tokenizers/clip-vit-l-14/{vocab.json,merges.txt} .device-server/tokenizers/clip/
gunzip -c models/src/test/resources/tokenizer/trained-nfkc/tokenizer.json.gz > .device-server/tokenizers/t5/tokenizer.json
ls -la .device-server
