#!/usr/bin/env bash
# Builds dit4j here and stages what bench/flux-device.sh needs on the GPU machine into .device-main/ (git-ignored):
# the CLI fat jar, the engine test classes and the JUnit console launcher. Also needs .device/jre.txz
# (../shared/tools/device-jre.sh) and, for the PyTorch baseline, .ref/diffusers-src.tgz (a diffusers source archive).
# Device call: carry [".device", ".device-main", ".ref"], command: bash bench/flux-device.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/find-jdk.sh
./mvnw -B -q -ntp -pl cli -am package -DskipTests
./mvnw -B -q -ntp -pl engine,cuda -am test-compile
rm -rf .device-main && mkdir -p .device-main
cp cli/target/dit4j.jar .device-main/
(cd engine/target/test-classes && zip -qr ../../../.device-main/engine-tests.zip .)
(cd cuda/target/test-classes && zip -qr ../../../.device-main/engine-tests.zip .)
cp "$(ls ~/.m2/repository/org/junit/platform/junit-platform-console-standalone/*/junit-platform-console-standalone-*.jar | grep -v sources | tail -1)" .device-main/ 2>/dev/null \
  || ./mvnw -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:1.11.4 -DoutputDirectory=.device-main
# tokenizers for the random full-size pipeline benchmark (flux-device.sh pipeline): the real CLIP vocabulary from
# ../shared, and the small trained T5 tokenizer of the tokenizer tests (ids < 32128, so it fits T5-XXL's embedding)
mkdir -p .device-main/tokenizers/clip .device-main/tokenizers/t5
if [ -d ../shared/data/tokenizers/clip-vit-l-14 ]; then cp ../shared/data/tokenizers/clip-vit-l-14/{vocab.json,merges.txt} .device-main/tokenizers/clip/; fi
gunzip -c models/src/test/resources/tokenizer/trained-nfkc/tokenizer.json.gz > .device-main/tokenizers/t5/tokenizer.json
ls -la .device-main
