#!/usr/bin/env bash
# Builds this worktree and stages what bench/vae-device.sh needs into <main checkout>/.device-vaespeed/ (git-ignored),
# because the device call copies the main checkout. Usage: bash bench/vae-stage.sh [/work/main]
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=${1:-/work/main}
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
./mvnw -o -q -pl cli -am package -DskipTests
./mvnw -o -q -pl cuda -am test-compile
S=$MAIN/.device-vaespeed
rm -rf "$S" && mkdir -p "$S"
cp cli/target/dit4j.jar "$S/"
cp -r cuda/target/test-classes "$S/cuda-tests"
cp bench/vae-device.sh bench/vae_torch_baseline.py bench/cudnn_check_constants.py "$S/"
cp "$(ls ~/.m2/repository/org/junit/platform/junit-platform-console-standalone/*/junit-platform-console-standalone-*.jar | grep -v sources | tail -1)" "$S/junit-console.jar"
du -sh "$S"
