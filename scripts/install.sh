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

# System packages Flashpods' own scripts and tests use (Podman's are in setup-podman.sh; sudo for
# test/scripts/as-root.test.ts, which runs the README's commands as a sudoer); the
# last line is scripts/flashpods-vm's: it builds and boots the production-like VM of test/vm/.
APT_PACKAGES=(curl python3-venv iproute2 git nix-bin nftables rsync sudo
  qemu-system-x86 qemu-utils debootstrap e2fsprogs)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash "$ROOT/scripts/setup-podman.sh"
# Real SPIRE server and agent (built from the Go module proxy; cached after the first build).
bash "$ROOT/scripts/setup-spire.sh"
# The single-node Kubernetes of the Kubernetes executor's tests (test/support/kubernetes.ts):
# its control plane, kubelet and etcd built from the Go module proxy (cached by version; the
# first build takes minutes), containerd and the CNI plugins from Debian.
bash "$ROOT/scripts/setup-kubernetes.sh"
# Local test images (agent and worker) assembled from the host's files: no registry needed.
bash "$ROOT/scripts/build-test-images.sh"

# The API fuzz test runs schemathesis (PyPI) from a project-local venv, pinned.
SCHEMATHESIS_VERSION=4.32.5
if [[ ! -x "$ROOT/.venv/bin/schemathesis" ]] || ! "$ROOT/.venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into .venv"
  /usr/bin/python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cd "$ROOT"
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "done"
