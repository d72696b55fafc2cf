#!/usr/bin/env bash
# Builds dit4j here and stages what bench/wan-check-device.sh needs on the GPU machine into DEST/.device-wancheck/
# (git-ignored; DEST: the repository root whose working tree the device gets, default this one, e.g. /work/main):
# the CLI fat jar, the device script, the reference script, the tiny random Wan pipeline (TinyWan, engine test classes)
# and a small trained T5 tokenizer.json (ids < 32128, so it fits umT5-XXL's 256384-entry embedding) for the random
# full-size runs. NOJAR=1 leaves the jar out (then run with JAR=.device-main/dit4j.jar built from a main with this code).
# Device call: carry [".device", ".device-wancheck", ".ref"], command: bash .device-wancheck/wan-check-device.sh tiny
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/find-jdk.sh
DEST=${1:-$PWD}
./mvnw -B -q -ntp -o -pl cli -am package -DskipTests
./mvnw -B -q -ntp -o -pl engine test-compile
S="$DEST/.device-wancheck"
rm -rf "$S" && mkdir -p "$S"
[ "${NOJAR:-0}" = 1 ] || cp cli/target/dit4j.jar "$S/"
cp bench/wan-check-device.sh scripts/reference/wan_pipeline_reference.py "$S/"
T=$(mktemp -d)
"$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector \
  -cp engine/target/test-classes:cli/target/dit4j.jar org.dit4j.engine.wan.TinyWan "$T" 2>&1 | grep -v incubator || true
tar czf "$S/tiny.tgz" -C "$T" tiny-wan
rm -rf "$T"
gunzip -c models/src/test/resources/tokenizer/trained-nfkc/tokenizer.json.gz > "$S/tokenizer.json"
ls -la "$S"
du -sh "$S"
