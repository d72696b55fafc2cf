# Sourced by ./dit4j and ./test: sets JAVA_HOME to a JDK >= 25 or exits with a clear message.
dit4j_find_jdk() {
  local cand v
  for cand in "${JAVA_HOME:-}" /usr/lib/jvm/*25* /usr/lib/jvm/*2[6-9]* /usr/lib/jvm/*; do
    [ -n "$cand" ] && [ -x "$cand/bin/java" ] || continue
    v=$("$cand/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    if [ -n "$v" ] && [ "${v%%.*}" -ge 25 ] 2>/dev/null; then
      export JAVA_HOME="$cand"
      return 0
    fi
  done
  echo "dit4j needs a JDK 25 or newer (for the FFM API and the Vector API)." >&2
  echo "Searched: \$JAVA_HOME (${JAVA_HOME:-unset}) and /usr/lib/jvm/*. Install one (e.g. Temurin 25) and set JAVA_HOME." >&2
  exit 1
}
dit4j_find_jdk
