#!/usr/bin/env bash
# Prepares a Debian 12 build/CI machine (as root) for Flashpods' real-Podman tests:
# packages, Podman config, /dev/net/tun, the rootless user `flashpods`, the token service's own
# system user `flashpods-tokens` (as nix/modules/token-service.nix makes it), and the busybox test
# image `localhost/busybox:test` for root and for flashpods (busybox applets, plus a stand-in
# agent `/entrypoint.sh` that runs $FLASHPODS_TASK as a shell command).
# Idempotent; fast when already done. Facts behind each step: shared/notes/podman-here.md.
set -euo pipefail

[[ $EUID -eq 0 ]] || { echo "setup-podman.sh: must run as root" >&2; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF="$SCRIPT_DIR/containers.conf"
IMAGE=localhost/busybox:test
USER_NAME=flashpods
TOKEN_USER=flashpods-tokens
PACKAGES=(podman runc slirp4netns uidmap fuse-overlayfs rsync nftables busybox-static catatonit)
APPLETS=(sh echo cat ls id sleep env mkdir ln true false kill yes head tail dd seq wc tr printf
  touch rm cp mv stat grep sed cut date test nc pwd uname hostname whoami ps)
ENTRYPOINT='#!/bin/sh
exec /bin/sh -c "$FLASHPODS_TASK"
'

log() { echo "setup-podman: $*"; }

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_user() {
  id -u "$USER_NAME" >/dev/null 2>&1 || { log "creating user $USER_NAME"; useradd -m -s /bin/bash "$USER_NAME"; }
  # useradd assigns sub-ids only when /etc/subuid existed; else add the next free range.
  local f start
  for f in /etc/subuid /etc/subgid; do
    grep -q "^$USER_NAME:" "$f" 2>/dev/null && continue
    start=$(awk -F: '$2 + $3 > m { m = $2 + $3 } END { print (m > 100000 ? m : 100000) }' "$f" 2>/dev/null || echo 100000)
    echo "$USER_NAME:$start:65536" >>"$f"
  done
  local uid; uid=$(id -u "$USER_NAME")
  install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "/run/user/$uid"
  # Rootless Podman reads this file too, so it must be readable by the user.
  runuser -u "$USER_NAME" -- test -r "$CONTAINERS_CONF" \
    || { echo "setup-podman.sh: $CONTAINERS_CONF is not readable by $USER_NAME" >&2; exit 1; }
}

as_user() {
  local uid; uid=$(id -u "$USER_NAME")
  (cd / && runuser -u "$USER_NAME" -- env HOME="/home/$USER_NAME" XDG_RUNTIME_DIR="/run/user/$uid" \
    CONTAINERS_CONF="$CONTAINERS_CONF" "$@")
}

ensure_token_user() {
  id -u "$TOKEN_USER" >/dev/null 2>&1 && return
  log "creating system user $TOKEN_USER"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$TOKEN_USER"
}

# The image's contents are stamped into a label so a change rebuilds it.
ensure_image() {
  local stamp; stamp=$(printf '%s ' "${APPLETS[@]}" "$ENTRYPOINT" | sha256sum | cut -c1-16)
  local have_root have_user
  have_root=$(podman image inspect --format '{{index .Labels "flashpods.test-image"}}' "$IMAGE" 2>/dev/null || true)
  have_user=$(as_user podman image inspect --format '{{index .Labels "flashpods.test-image"}}' "$IMAGE" 2>/dev/null || true)
  [[ $have_root == "$stamp" && $have_user == "$stamp" ]] && return

  local tmp; tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp/r/bin" "$tmp/r/etc" "$tmp/r/tmp"
  chmod 1777 "$tmp/r/tmp"
  cp /bin/busybox "$tmp/r/bin/"
  for a in "${APPLETS[@]}"; do ln -sf busybox "$tmp/r/bin/$a"; done
  printf '%s' "$ENTRYPOINT" >"$tmp/r/entrypoint.sh"
  chmod 0755 "$tmp/r/entrypoint.sh"
  tar -C "$tmp/r" -cf "$tmp/bb.tar" .
  chmod 0755 "$tmp"; chmod 0644 "$tmp/bb.tar"
  [[ $have_root == "$stamp" ]] || { log "importing $IMAGE (root)"; import_image "$stamp" "$tmp/bb.tar"; }
  [[ $have_user == "$stamp" ]] || { log "importing $IMAGE ($USER_NAME)"; import_image "$stamp" "$tmp/bb.tar" as_user; }
}

# import_image STAMP TAR [as_user]: imports, then drops the image it replaced (if no container uses it).
import_image() {
  local run=(${3:-}) old
  old=$("${run[@]}" podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  "${run[@]}" podman import -q --change "LABEL flashpods.test-image=$1" "$2" "$IMAGE" >/dev/null
  [[ -z $old ]] || "${run[@]}" podman rmi "$old" >/dev/null 2>&1 || true
}

install_packages
# slirp4netns needs it; it is 0600 on these VMs and 0666 on normal hosts.
if [[ -c /dev/net/tun ]]; then chmod 0666 /dev/net/tun; else log "warning: no /dev/net/tun (slirp4netns unusable)"; fi
ensure_user
ensure_token_user
ensure_image
log "ready (CONTAINERS_CONF=$CONTAINERS_CONF)"
