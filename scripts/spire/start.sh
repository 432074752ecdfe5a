#!/usr/bin/env bash
# start.sh DIR PODMAN_SOCKET — a SPIRE server + agent for Flashpods, for dev machines and manual
# checks (test/support/spire.ts does the same for tests). As root (the agent reads other
# processes' /proc entries and the rootful Podman socket). Requires scripts/setup-spire.sh.
#
#  1. renders scripts/spire/{server,agent}.conf into DIR (data in DIR/server, DIR/agent);
#  2. starts the server, waits for its healthcheck, exports its CA as the agent's trust bundle;
#  3. generates a single-use join token that makes the agent spiffe://flashpods.local/host;
#  4. registers spiffe://flashpods.local/worker and /agent (selectors
#     docker:label:flashpods-job-type:worker|agent, parent spiffe://flashpods.local/host);
#  5. starts the agent, waits until it is attested and has synced both entries.
#
# The Workload API socket is DIR/sockets/agent.sock unless SPIRE_AGENT_SOCKET is set (e.g.
# /run/spire/sockets/agent.sock); the server listens on 127.0.0.1:${SPIRE_SERVER_PORT:-8081}.
# PODMAN_SOCKET is the rootful Podman API socket (path or unix:// URL) the docker attestor asks
# for container labels; SPIRE_PODMAN_SOCKET_TEMPLATE overrides the rootless template.
# Stop with: kill $(cat DIR/agent.pid DIR/server.pid). Running it again on a DIR whose daemons
# are still alive is refused.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true # "&" in a substituted path stays literal

[[ $# -eq 2 ]] || { echo "usage: $0 DIR PODMAN_SOCKET" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "start.sh: must run as root" >&2; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${SPIRE_BIN_DIR:-/usr/local/lib/flashpods/spire/v1.15.3}
DIR=$(mkdir -p "$1" && cd "$1" && pwd)
PODMAN=$2; [[ $PODMAN == unix://* ]] || PODMAN="unix://$PODMAN"
PORT=${SPIRE_SERVER_PORT:-8081}
AGENT_SOCKET=${SPIRE_AGENT_SOCKET:-$DIR/sockets/agent.sock}
TEMPLATE=${SPIRE_PODMAN_SOCKET_TEMPLATE:-unix:///run/user/%d/podman/podman.sock}
SERVER_SOCKET=$DIR/server/api.sock
TD=spiffe://flashpods.local

for b in spire-server spire-agent; do
  [[ -x $BIN/$b ]] || { echo "start.sh: $BIN/$b missing: run scripts/setup-spire.sh" >&2; exit 1; }
done
for p in server agent; do
  if [[ -f $DIR/$p.pid ]] && kill -0 "$(cat "$DIR/$p.pid")" 2>/dev/null; then
    echo "start.sh: spire-$p is already running from $DIR (pid $(cat "$DIR/$p.pid"))" >&2; exit 1
  fi
done
install -d -m 0700 "$DIR/server" "$DIR/agent"
install -d -m 0755 "$(dirname "$AGENT_SOCKET")"

render() { # render TEMPLATE OUT KEY=VALUE...
  local in=$1 out=$2 text; shift 2
  text=$(<"$in")
  for kv in "$@"; do text=${text//@${kv%%=*}@/${kv#*=}}; done
  printf '%s\n' "$text" >"$out"
}
wait_for() { # wait_for WHAT SECONDS CMD...
  local what=$1 deadline=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "start.sh: $what not ready in time; see $DIR/*.log" >&2; exit 1; }
    sleep 0.2
  done
}

t0=$(date +%s%N)
render "$HERE/server.conf" "$DIR/server.conf" DATA_DIR="$DIR/server" SOCKET_PATH="$SERVER_SOCKET" BIND_PORT="$PORT" LOG_LEVEL=INFO
setsid "$BIN/spire-server" run -config "$DIR/server.conf" >>"$DIR/server.log" 2>&1 </dev/null &
echo $! >"$DIR/server.pid"
wait_for spire-server 30 "$BIN/spire-server" healthcheck -socketPath "$SERVER_SOCKET"

server() { "$BIN/spire-server" "$@" -socketPath "$SERVER_SOCKET"; }
server bundle show -format pem >"$DIR/bootstrap.pem"
TOKEN=$(server token generate -spiffeID "$TD/host" -ttl 600 | sed -n 's/^Token: //p')
[[ -n $TOKEN ]] || { echo "start.sh: no join token" >&2; exit 1; }
for t in worker agent; do
  if ! server entry show -spiffeID "$TD/$t" | grep -q "docker:label:flashpods-job-type:$t"; then
    server entry create -parentID "$TD/host" -spiffeID "$TD/$t" -selector "docker:label:flashpods-job-type:$t" >/dev/null
  fi
done

render "$HERE/agent.conf" "$DIR/agent.conf" DATA_DIR="$DIR/agent" SERVER_PORT="$PORT" SOCKET_PATH="$AGENT_SOCKET" \
  TRUST_BUNDLE="$DIR/bootstrap.pem" PODMAN_SOCKET="$PODMAN" PODMAN_SOCKET_TEMPLATE="$TEMPLATE" LOG_LEVEL=INFO
setsid "$BIN/spire-agent" run -config "$DIR/agent.conf" -joinToken "$TOKEN" >>"$DIR/agent.log" 2>&1 </dev/null &
echo $! >"$DIR/agent.pid"
wait_for spire-agent 30 "$BIN/spire-agent" healthcheck -socketPath "$AGENT_SOCKET"
# The server refreshes its entry cache and the agent syncs every 5 s: wait for both entries.
synced() { for t in worker agent; do grep -q "Creating X509-SVID.*spiffe_id=\"$TD/$t\"" "$DIR/agent.log" || return 1; done; }
wait_for "entry sync" 30 synced

echo "SPIRE ready in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
echo "  server socket: $SERVER_SOCKET (127.0.0.1:$PORT), log $DIR/server.log"
echo "  agent socket:  $AGENT_SOCKET, log $DIR/agent.log"
echo "  stop: kill \$(cat $DIR/agent.pid $DIR/server.pid)"
