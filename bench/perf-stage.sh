#!/usr/bin/env bash
# Builds this checkout and stages bench/perf-device.sh's inputs into DEST (default /work/main/.device-perf, a
# git-ignored folder of the main checkout, which is what the device machine receives): dit4j.jar, tests.zip (core,
# cuda and engine test classes), the JUnit console launcher and the script. BASE_JAR=<path> also stages a jar to
# compare against as base.jar. Needs /work/main/.device/jre.txz on the device side (carry ".device").
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-/work/main/.device-perf}
mkdir -p "$DEST" && DEST=$(cd "$DEST" && pwd)
. scripts/find-jdk.sh
./mvnw -B -q -o -ntp -pl cli -am package -DskipTests
./mvnw -B -q -o -ntp -pl engine -am test-compile
rm -f "$DEST"/dit4j.jar "$DEST"/tests.zip
cp cli/target/dit4j.jar "$DEST"/
if [ -n "${BASE_JAR:-}" ]; then cp "$BASE_JAR" "$DEST"/base.jar; fi
tmp=$(mktemp -d)
for m in core cuda engine; do cp -r "$m"/target/test-classes/. "$tmp"/; done
(cd "$tmp" && zip -qr "$DEST/tests.zip" .)
rm -rf "$tmp"
cp "$(ls ~/.m2/repository/org/junit/platform/junit-platform-console-standalone/*/junit-platform-console-standalone-*.jar | grep -v sources | tail -1)" "$DEST"/
cp bench/perf-device.sh "$DEST"/
ls -la "$DEST"
