#!/usr/bin/env bash
# Stages the Flux component check (bench/flux-components-device.sh) for the GPU machine: builds the CLI fat jar from
# this tree and copies it with the device script and the reference script into DEST/.device-fluxcheck/ (git-ignored).
# DEST defaults to this tree's root; from a helper worktree pass /work/main (the device copies /work/main's tree).
#   bash bench/stage-components.sh [DEST]
# Device call (from DEST): carry [".device", ".device-fluxcheck", ".ref"],
#   command: bash .device-fluxcheck/flux-components-device.sh
# Needs DEST/.device/jre.txz (the device JRE) and DEST/.ref/diffusers-src.tgz.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-$PWD}
. scripts/find-jdk.sh
./mvnw -B -q -ntp -o -pl cli -am package -DskipTests
rm -rf "$dest/.device-fluxcheck" && mkdir -p "$dest/.device-fluxcheck"
cp cli/target/dit4j.jar bench/flux-components-device.sh bench/flux_components_reference.py "$dest/.device-fluxcheck/"
for f in .device/jre.txz .ref/diffusers-src.tgz; do
  [ -f "$dest/$f" ] || echo "warning: $dest/$f is missing; the device run needs it" >&2
done
ls -la "$dest/.device-fluxcheck"
