#!/usr/bin/env bash
# Builds this worktree and stages what bench/wansp-device.sh needs into <main>/.device-wansp/ (git-ignored): the CLI
# fat jar, the core/cuda/engine test classes, the JUnit console launcher and the device script.
#   bash bench/stage-wansp.sh [/work/main]
# Device call: kind nvidia-h100-x2, carry [".device", ".device-wansp"], command: bash .device-wansp/wansp-device.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=${1:-/work/main}
. scripts/find-jdk.sh
./mvnw -o -B -q -ntp -pl cli -am package -DskipTests
./mvnw -o -B -q -ntp -pl engine,cuda -am test-compile
D="$MAIN/.device-wansp"
rm -rf "$D" && mkdir -p "$D"
cp cli/target/dit4j.jar bench/wansp-device.sh "$D/"
tmp=$(mktemp -d)
for m in core cuda engine; do cp -r "$m/target/test-classes/." "$tmp/"; done
(cd "$tmp" && python3 -m zipfile -c "$D/test-classes.zip" .)
rm -rf "$tmp"
cp "$(ls ~/.m2/repository/org/junit/platform/junit-platform-console-standalone/*/junit-platform-console-standalone-*.jar | grep -v sources | tail -1)" "$D/"
[ -f "$MAIN/.device/jre.txz" ] || echo "WARNING: $MAIN/.device/jre.txz is missing (the lead builds it); the device script needs it"
ls -la "$D"
du -sh "$D"
