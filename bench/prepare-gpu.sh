#!/usr/bin/env bash
# Builds the cuda module (with its test-jar) here and stages what bench/gpu-check.sh needs on the GPU machine
# into <main checkout>/.device-cuda/ (git-ignored; pass it to the device run with carry: [".device-cuda", ".device"]).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-/work/main/.device-cuda}
cd "$ROOT"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
./mvnw -o -q -pl cuda -am package -DskipTests
mkdir -p "$DEST"
rm -f "$DEST"/*.jar
cp core/target/dit4j-core-*.jar cuda/target/dit4j-cuda-*.jar "$DEST"/
LAUNCHER=$(ls ~/.m2/repository/org/junit/platform/junit-platform-console-standalone/*/junit-platform-console-standalone-*.jar | grep -v sources | tail -1)
cp "$LAUNCHER" "$DEST"/
cp bench/gpu-check.sh "$DEST"/
ls -la "$DEST"
