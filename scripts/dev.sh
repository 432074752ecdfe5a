#!/usr/bin/env bash
# Installs everything, then runs Flashpods on its embedded dev defaults: state under ./.flashpods,
# a rootful Podman API socket of its own, the API on 127.0.0.1:8080, the log pretty-printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/install.sh"

export FLASHPODS_HOME=${FLASHPODS_HOME:-$ROOT/.flashpods}
export CONTAINERS_CONF="$ROOT/scripts/containers.conf"
SOCKET=${FLASHPODS_PODMAN_SOCKET:-$FLASHPODS_HOME/run/podman.sock}
mkdir -p "$(dirname "$SOCKET")"
if ! curl -sf --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; then
  echo "dev: starting the Podman API on $SOCKET"
  nohup podman system service --time=0 "unix://$SOCKET" >"$FLASHPODS_HOME/podman-service.log" 2>&1 &
  for _ in $(seq 50); do curl -sf --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
export FLASHPODS_PODMAN_SOCKET=$SOCKET
cd "$ROOT"
exec node cli/flashpods.mjs serve --pretty
