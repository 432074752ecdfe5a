#!/usr/bin/env bash
# Installs everything, then runs Flashpods on its embedded dev defaults: state under ./.flashpods,
# a rootful Podman API socket of its own, an rsync daemon for uploads on 127.0.0.1:8873
# (RSYNCD_PORT), the API on 127.0.0.1:8080, the log pretty-printed. Prints the MCP shim settings
# that reach this server. As root, or as a sudoer (it re-runs itself with sudo).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/as-root.sh"
bash "$ROOT/scripts/install.sh"
cd "$ROOT"

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

# Where the server will look, from its own settings (FLASHPODS_* overrides included).
{ read -r uploads; read -r transfers; read -r token_file; read -r api_host; read -r api_port; } < <(node --import tsx --input-type=module -e '
  const { loadConfig } = await import("./actors/contract/config.ts");
  try {
    const c = loadConfig();
    console.log([c.paths.uploads, c.paths.rsyncTransfers, c.paths.apiTokenFile, c.listen.host, c.listen.port].join("\n"));
  } catch (err) {
    console.error(`dev: ${err.message}`);
  }')
rsync_port=${RSYNCD_PORT:-8873}
daemon=$(bash "$ROOT/scripts/rsyncd/start-dev.sh" "$uploads" "$transfers" "$FLASHPODS_HOME/rsyncd" "$rsync_port")
echo "dev: rsync daemon for uploads: $daemon"

# The token file is root's (0600) and written on the first start; read it when the command runs.
cat_token="cat $token_file"
[[ -n ${SUDO_USER:-} ]] && cat_token="sudo $cat_token"
cat <<SETTINGS
dev: the MCP shim reaches this server with
  FLASHPODS_API_TOKEN="\$($cat_token)" FLASHPODS_HOST=$api_host FLASHPODS_PORT=$api_port FLASHPODS_RSYNC_HOST=127.0.0.1 FLASHPODS_RSYNC_PORT=$rsync_port
  e.g. claude mcp add --transport stdio --env FLASHPODS_API_TOKEN="\$($cat_token)" --env FLASHPODS_HOST=$api_host --env FLASHPODS_PORT=$api_port \\
         --env FLASHPODS_RSYNC_HOST=127.0.0.1 --env FLASHPODS_RSYNC_PORT=$rsync_port flashpods -- node $ROOT/mcp/flashpods-mcp.mjs
SETTINGS
exec node cli/flashpods.mjs serve --pretty
