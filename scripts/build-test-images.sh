#!/usr/bin/env bash
# Builds the identity test images without a registry (as root, into rootful Podman storage):
#   localhost/flashpods-agent:test   CMD /entrypoint.sh — images/agent/entrypoint.sh, with a
#                                    stand-in coding agent (FLASHPODS_AGENT_CMD runs
#                                    $FLASHPODS_TASK as a shell script: the real CLI needs the
#                                    network)
#   localhost/flashpods-worker:test  ENTRYPOINT /usr/local/bin/flashpods-tokens (images/worker/)
# Both come from one rootfs assembled from the host's own files and imported with
# `podman import` (about seconds, versus minutes for debootstrap):
#   busybox-static (all applets in /bin), the host's dash as /bin/sh (Debian's /bin/sh, so the
#   scripts run under the shell the production images have), the host's git (+ /usr/lib/git-core and the shared
#   libraries of every ELF in it, found with ldd), the host's curl (+ its libraries: the token
#   socket is HTTP over a unix socket), the static spire-agent (SPIRE's Workload API client),
#   images/lib/identity.sh, images/agent/entrypoint.sh, images/worker/flashpods-tokens.
# The production images are images/{agent,worker}/Containerfile; the entrypoint scripts are the
# same files.
#
# Idempotent: the inputs are stamped into a label; when both images carry the current stamp,
# nothing is rebuilt (well under a second). Requires scripts/setup-podman.sh (podman,
# busybox-static) and scripts/setup-spire.sh (the static spire-agent); git and curl on the host.
# Env: SPIRE_AGENT_BIN (default /usr/local/lib/flashpods/spire/v1.15.3/spire-agent).
set -euo pipefail

[[ $EUID -eq 0 ]] || { echo "build-test-images.sh: must run as root" >&2; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
export CONTAINERS_CONF="$HERE/containers.conf"
AGENT_IMAGE=localhost/flashpods-agent:test
WORKER_IMAGE=localhost/flashpods-worker:test
SPIRE_AGENT=${SPIRE_AGENT_BIN:-/usr/local/lib/flashpods/spire/v1.15.3/spire-agent}
BUSYBOX=/bin/busybox
GIT_CORE=$(git --exec-path 2>/dev/null || echo /usr/lib/git-core)
SCRIPTS=("$REPO/images/lib/identity.sh" "$REPO/images/agent/entrypoint.sh" "$REPO/images/worker/flashpods-tokens" "${BASH_SOURCE[0]}")
# The stand-in for the coding agent CLI: the test's "task" is the work it does.
STAND_IN='#!/bin/sh
# Test stand-in for the coding agent CLI: runs $FLASHPODS_TASK as a shell script (in /work,
# with the prompt on stdin, as /entrypoint.sh runs the real one).
exec /bin/sh -c "$FLASHPODS_TASK"
'

log() { echo "build-test-images: $*"; }
t0=$(date +%s%N)

for f in "$SPIRE_AGENT" "$BUSYBOX" "${SCRIPTS[@]}"; do [[ -f $f ]] || { echo "build-test-images.sh: $f is missing" >&2; exit 1; }; done
command -v git >/dev/null && command -v curl >/dev/null && [[ -x /bin/dash ]] || { echo "build-test-images.sh: needs git, curl and dash on the host" >&2; exit 1; }
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static "$BUSYBOX" || { echo "build-test-images.sh: $BUSYBOX is not static (apt-get install busybox-static)" >&2; exit 1; }
file_is_static "$SPIRE_AGENT" || { echo "build-test-images.sh: $SPIRE_AGENT is not static" >&2; exit 1; }

# What the images are made of: script contents, binaries by identity (path, size, mtime).
stamp=$( {
  sha256sum "${SCRIPTS[@]}" | cut -d' ' -f1
  printf '%s' "$STAND_IN" | sha256sum
  stat -c '%n %s %Y' "$SPIRE_AGENT" "$BUSYBOX" /bin/dash "$(command -v git)" "$(command -v curl)" "$GIT_CORE"
  git --version; curl --version | head -n 1
} | sha256sum | cut -c1-16)
label_of() { podman image inspect --format '{{index .Labels "flashpods.test-image"}}' "$1" 2>/dev/null || true; }
if [[ $(label_of "$AGENT_IMAGE") == "$stamp" && $(label_of "$WORKER_IMAGE") == "$stamp" ]]; then
  log "up to date ($AGENT_IMAGE, $WORKER_IMAGE; stamp $stamp) in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
r=$tmp/rootfs
mkdir -p "$r"/{bin,etc,root,tmp,work,artifacts,usr/bin,usr/lib,usr/share,usr/local/bin,usr/local/lib/flashpods,run/spire/sockets,run/flashpods}
chmod 0755 "$r"
chmod 1777 "$r/tmp"

# busybox: every applet as /bin/<name>.
cp "$BUSYBOX" "$r/bin/busybox"
for a in $("$BUSYBOX" --list); do [[ $a == busybox ]] || ln -sf busybox "$r/bin/$a"; done
# /bin/sh is dash, as on Debian (the production images' base): the scripts must be dash-clean.
cp -L /bin/dash "$r/bin/dash"
ln -sf dash "$r/bin/sh"

# git with its helpers and templates, curl, and every shared library they load.
cp -L "$(command -v git)" "$r/usr/bin/git"
cp -a "$GIT_CORE" "$r/usr/lib/"
[[ -d /usr/share/git-core ]] && cp -a /usr/share/git-core "$r/usr/share/"
cp -L "$(command -v curl)" "$r/usr/bin/curl"
elves=("$r/bin/dash" "$r/usr/bin/git" "$r/usr/bin/curl")
while IFS= read -r -d '' f; do elves+=("$f"); done < <(find "$r/usr/lib/$(basename "$GIT_CORE")" -type f -perm -u+x -print0)
for f in "${elves[@]}"; do
  ldd "$f" 2>/dev/null | grep -oE '/[^ ]+' || true
done | sort -u | while read -r lib; do
  [[ -e $r$lib ]] || cp -L --parents "$lib" "$r"
done

cp "$SPIRE_AGENT" "$r/usr/local/bin/spire-agent"
install -m 0644 "$REPO/images/lib/identity.sh" "$r/usr/local/lib/flashpods/identity.sh"
install -m 0755 "$REPO/images/agent/entrypoint.sh" "$r/entrypoint.sh"
install -m 0755 "$REPO/images/worker/flashpods-tokens" "$r/usr/local/bin/flashpods-tokens"
printf '%s' "$STAND_IN" >"$r/usr/local/bin/flashpods-stand-in-agent"
chmod 0755 "$r/usr/local/bin/flashpods-stand-in-agent"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"

tar -C "$r" -cf "$tmp/rootfs.tar" .
size=$(du -sh "$tmp/rootfs.tar" | cut -f1)

# import_image IMAGE CHANGES...: imports, then drops the image it replaced (if no container uses it).
import_image() {
  local image=$1 old change=()
  shift
  for c in "$@"; do change+=(--change "$c"); done
  old=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  podman import -q "${change[@]}" --change "LABEL flashpods.test-image=$stamp" "$tmp/rootfs.tar" "$image" >/dev/null
  [[ -z $old ]] || podman rmi "$old" >/dev/null 2>&1 || true
}
ENV_PATH='ENV PATH=/usr/local/bin:/usr/bin:/bin'
# Does it work? The loader, git (the local transport runs upload-pack), curl, the scripts' syntax.
check='readlink /bin/sh | grep -qx dash && git --version && cd /tmp && git init -q --bare t.git && git ls-remote t.git && curl --version
  for s in /entrypoint.sh /usr/local/lib/flashpods/identity.sh /usr/local/bin/flashpods-tokens; do sh -n "$s" || exit 1; done'
import_image "$AGENT_IMAGE" "$ENV_PATH" 'ENV FLASHPODS_AGENT_CMD=flashpods-stand-in-agent' 'WORKDIR /work' 'CMD ["/entrypoint.sh"]'
podman run --rm --network none "$AGENT_IMAGE" /bin/sh -c "$check" >/dev/null \
  || { echo "build-test-images.sh: $AGENT_IMAGE does not work (see above)" >&2; podman rmi "$AGENT_IMAGE" >/dev/null 2>&1; exit 1; }
import_image "$WORKER_IMAGE" "$ENV_PATH" 'ENTRYPOINT ["/usr/local/bin/flashpods-tokens"]' 'CMD ["/bin/sh"]'
log "built $AGENT_IMAGE and $WORKER_IMAGE (rootfs $size, stamp $stamp) in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
