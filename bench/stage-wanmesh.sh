#!/usr/bin/env bash
# Builds this worktree and stages what bench/wanmesh-device.sh needs into <main>/.device-wanmesh/ (git-ignored): the CLI
# fat jar, the core/cuda/engine/server test classes, the JUnit console launcher and the device script.
#   bash bench/stage-wanmesh.sh [/work/main]
# Device call: kind nvidia-h100-x2, carry [".device", ".device-wanmesh"], command: bash .device-wanmesh/wanmesh-device.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=${1:-/work/main}
. scripts/find-jdk.sh
./mvnw -o -B -q -ntp -pl cli -am package -DskipTests
./mvnw -o -B -q -ntp -pl server -am test-compile
D="$MAIN/.device-wanmesh"
rm -rf "$D" && mkdir -p "$D"
cp cli/target/dit4j.jar bench/wanmesh-device.sh "$D/"
tmp=$(mktemp -d)
for m in core cuda engine server; do cp -r "$m/target/test-classes/." "$tmp/"; done
(cd "$tmp" && python3 -m zipfile -c "$D/test-classes.zip" .)
rm -rf "$tmp"
cp "$(ls ~/.m2/repository/org/junit/platform/junit-platform-console-standalone/*/junit-platform-console-standalone-*.jar | grep -v sources | tail -1)" "$D/"
[ -f "$MAIN/.device/jre.txz" ] || echo "WARNING: $MAIN/.device/jre.txz is missing (the lead builds it); the device script needs it"
ls -la "$D"
du -sh "$D"
