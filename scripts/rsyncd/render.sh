#!/usr/bin/env bash
# Renders rsyncd.conf.template to stdout. Every placeholder comes from the environment, with the
# production values of spec/host.md as defaults:
#   RSYNCD_ADDRESS=10.0.0.1 RSYNCD_PORT=873 RSYNCD_HOSTS_ALLOW=10.0.0.2
#   RSYNCD_UPLOADS_DIR=/tmp/flashpods/uploads RSYNCD_UID=flashpods RSYNCD_GID=flashpods
#   RSYNCD_USE_CHROOT=yes RSYNCD_RUN_DIR=/run/flashpods RSYNCD_LOG_FILE=/var/log/flashpods/rsyncd.log
#   RSYNCD_TRANSFER_HOOK=<this directory>/transfer-hook.sh RSYNCD_TRANSFERS_DIR=/run/rsyncd/transfers
# Dev use: scripts/dev.sh starts one through start-dev.sh (loopback, port 8873).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sed \
  -e "s|@ADDRESS@|${RSYNCD_ADDRESS:-10.0.0.1}|g" \
  -e "s|@PORT@|${RSYNCD_PORT:-873}|g" \
  -e "s|@HOSTS_ALLOW@|${RSYNCD_HOSTS_ALLOW:-10.0.0.2}|g" \
  -e "s|@UPLOADS_DIR@|${RSYNCD_UPLOADS_DIR:-/tmp/flashpods/uploads}|g" \
  -e "s|@UID@|${RSYNCD_UID:-flashpods}|g" \
  -e "s|@GID@|${RSYNCD_GID:-flashpods}|g" \
  -e "s|@USE_CHROOT@|${RSYNCD_USE_CHROOT:-yes}|g" \
  -e "s|@RUN_DIR@|${RSYNCD_RUN_DIR:-/run/flashpods}|g" \
  -e "s|@LOG_FILE@|${RSYNCD_LOG_FILE:-/var/log/flashpods/rsyncd.log}|g" \
  -e "s|@TRANSFER_HOOK@|${RSYNCD_TRANSFER_HOOK:-$here/transfer-hook.sh}|g" \
  -e "s|@TRANSFERS_DIR@|${RSYNCD_TRANSFERS_DIR:-/run/rsyncd/transfers}|g" \
  "$here/rsyncd.conf.template"
