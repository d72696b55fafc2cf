#!/usr/bin/env bash
# Builds the JRE the GPU machine runs dit4j with: .device/jre.txz (git-ignored). Like ../shared/tools/device-jre.sh
# (jlink of a JDK 25) plus java.desktop (the server's ImageIO/AWT image code), but jlinked uncompressed and packed with
# xz: 22 MB instead of 41 MB as .tgz, which keeps device calls under the 64 MiB carry limit. On the GPU machine:
#   tar xf .device/jre.txz -C /tmp && /tmp/jre/bin/java …      (GNU tar detects xz)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.device/jre.txz}
. scripts/find-jdk.sh
mods=java.base,java.logging,java.management,java.naming,java.net.http,java.sql,java.xml,java.desktop,jdk.management,jdk.incubator.vector,jdk.unsupported,jdk.crypto.ec
tmp=$(mktemp -d)
"$JAVA_HOME/bin/jlink" --add-modules "$mods" --strip-debug --no-header-files --no-man-pages --compress=zip-0 --output "$tmp/jre" 2>/dev/null
mkdir -p "$(dirname "$out")"
tar cf - -C "$tmp" jre | xz -9 -T2 > "$out"
rm -rf "$tmp"
echo "wrote $out ($(du -h "$out" | cut -f1))"
