#!/usr/bin/env bash
# The dev profile's upload daemon (scripts/dev.sh): the `uploads` module of rsyncd.conf.template,
# rendered by render.sh, on 127.0.0.1:<port> and open to 127.0.0.1 only (scripts/dev.sh: port
# 8873, never the production 873), with the transfer-register hook writing where the dev API
# reads it. As root (chroot). A daemon an earlier run left in <state dir> is stopped first, so
# the config always comes from this checkout.
#
#   start-dev.sh <uploads dir> <transfers dir> <state dir> <port>
#
# <state dir> gets rsyncd.conf, rsyncd.log and the pid and lock files.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage='usage: start-dev.sh <uploads dir> <transfers dir> <state dir> <port>'
uploads=${1:?$usage}
transfers=${2:?$usage}
state=${3:?$usage}
port=${4:?$usage}
pidfile=$state/rsyncd.pid

mkdir -p "$uploads" "$state"
if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  old=$(cat "$pidfile")
  kill "$old"
  for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
fi
rm -f "$pidfile"

RSYNCD_ADDRESS=127.0.0.1 RSYNCD_PORT=$port RSYNCD_HOSTS_ALLOW=127.0.0.1 RSYNCD_UPLOADS_DIR=$uploads \
  RSYNCD_UID=$(id -u) RSYNCD_GID=$(id -g) RSYNCD_RUN_DIR=$state RSYNCD_LOG_FILE=$state/rsyncd.log \
  RSYNCD_TRANSFERS_DIR=$transfers bash "$here/render.sh" >"$state/rsyncd.conf"
# stdin from /dev/null: rsync takes a socket there for inetd's (Node's child pipes are sockets).
rsync --daemon --config="$state/rsyncd.conf" </dev/null >/dev/null
# Ours, not another daemon on the port: it wrote its pid file and lives.
answers() {
  [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null &&
    rsync --contimeout=1 "rsync://127.0.0.1:$port/" 2>/dev/null | grep -q '^uploads'
}
for _ in $(seq 50); do answers && break; sleep 0.1; done
if ! answers; then
  echo "start-dev.sh: the rsync daemon does not answer on 127.0.0.1:$port (is the port taken? scripts/dev.sh takes another from RSYNCD_PORT); its log:" >&2
  tail -n 5 "$state/rsyncd.log" >&2 || true
  exit 1
fi
echo "rsync://127.0.0.1:$port/uploads/ (pid $(cat "$pidfile"), log $state/rsyncd.log)"
