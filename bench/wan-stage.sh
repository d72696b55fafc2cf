#!/usr/bin/env bash
# Builds dit4j here and stages what bench/wan-device.sh needs on the GPU machine into a git-ignored folder of the
# repository the device run copies (default: .device-wanbench/ of this checkout; pass another, e.g.
# /work/main/.device-wanbench, when the device copies another tree): the CLI fat jar, the engine + cuda test classes,
# the JUnit console launcher, and the Wan bench scripts themselves (so the run works before they are merged).
# Also needs .device/jre.txz (../shared/tools/device-jre.sh) and .ref/diffusers-src.tgz (a diffusers source archive)
# in the tree the device copies.
# Device call: carry [".device", ".device-wanbench", ".ref"], command: bash .device-wanbench/wan-device.sh [steps]
# (with WITH_JRE=1 the JRE is staged too and .device need not be carried).
set -euo pipefail
cd "$(dirname "$0")/.."
dst=${1:-.device-wanbench}
. scripts/find-jdk.sh
./mvnw -B -q -ntp -o -pl cli -am package -DskipTests
./mvnw -B -q -ntp -o -pl engine,cuda -am test-compile
rm -rf "$dst" && mkdir -p "$dst"
dst=$(realpath "$dst")
cp cli/target/dit4j.jar "$dst/"
(cd engine/target/test-classes && zip -qr "$dst/engine-tests.zip" .)
(cd cuda/target/test-classes && zip -qr "$dst/engine-tests.zip" .)
cp "$(ls ~/.m2/repository/org/junit/platform/junit-platform-console-standalone/*/junit-platform-console-standalone-*.jar | grep -v sources | tail -1)" "$dst/"
cp bench/wan-device.sh bench/wan_torch_baseline.py bench/wan_compare.py "$dst/"
# WITH_JRE=1: a JRE in the staging folder, so that the device call need not carry .device (64 MiB limit)
if [ "${WITH_JRE:-0}" = 1 ]; then bash bench/device-jre.sh "$dst/jre.txz" >/dev/null; fi
ls -la "$dst"
