#!/usr/bin/env bash
# Installs everything Flashpods needs on a fresh Debian 12 machine, as root: system packages and
# Podman set up for this machine (scripts/setup-podman.sh), then the npm dependencies.
# Idempotent: a second run only checks.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "install: $*"; }

[[ $EUID -eq 0 ]] || { echo "install.sh: run as root (it installs system packages)" >&2; exit 1; }

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
  echo "install.sh: Flashpods needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none)); Debian 12's own nodejs is 18 — install Node 20 first" >&2
  exit 1
fi

bash "$ROOT/scripts/setup-podman.sh"

cd "$ROOT"
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "done"
