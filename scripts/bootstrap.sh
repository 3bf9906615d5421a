# Sourced by scripts/serve and scripts/test: make .venv at the repo root and install kgmem into it.
# Re-installs only when pyproject.toml or the requested extras change.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"

find_python() {
  for candidate in "${KGMEM_PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "kgmem needs Python 3.11 or later; install it (Debian/Ubuntu: apt-get install python3.11 python3.11-venv) or set KGMEM_PYTHON" >&2
  return 1
}

# Neo4j needs Java 17+: when the machine has none, install the bundled JRE extra.
java_extra() {
  local java="${JAVA_HOME:+$JAVA_HOME/bin/java}"
  [ -n "$java" ] && [ -x "$java" ] || java="$(command -v java || true)"
  if [ -n "$java" ]; then
    local major
    major="$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[.".].*/\1/p' | head -n1)"
    [ "$major" = "1" ] && major=8
    if [ -n "$major" ] && [ "$major" -ge 17 ]; then return 0; fi
  fi
  echo ",java"
}

ensure_venv() {
  local extras="$1$(java_extra)"
  local python
  python="$(find_python)"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$python" -m venv "$VENV"
  fi
  local stamp="$VENV/.kgmem-install" want
  want="$(cat "$REPO/pyproject.toml" | sha256sum | cut -c1-16) [$extras]"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing kgmem[$extras] into .venv (the first time downloads PyTorch: several GB)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --editable "$REPO[$extras]"
    echo "$want" > "$stamp"
  fi
}

# The console's browser tests drive a system Chromium through Playwright (Playwright's own browser download
# needs a CDN). Find one (KGMEM_CHROMIUM, else chromium or Chrome on PATH); as root with apt-get, install
# Debian's package; otherwise stop and say how to get one.
ensure_chromium() {
  local found="${KGMEM_CHROMIUM:-}"
  if [ -z "$found" ]; then
    for candidate in chromium chromium-browser google-chrome google-chrome-stable; do
      found="$(command -v "$candidate" || true)"
      [ -n "$found" ] && break
    done
  fi
  if [ -z "$found" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Chromium for the console's browser tests (apt-get install chromium)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true
    found="$(command -v chromium || true)"
  fi
  if [ -z "$found" ] || [ ! -x "$found" ]; then
    echo "kgmem's console tests need Chromium: install it (Debian/Ubuntu: sudo apt-get install chromium)," \
         "or set KGMEM_CHROMIUM to a Chromium or Chrome binary" >&2
    return 1
  fi
  export KGMEM_CHROMIUM="$found"
}
