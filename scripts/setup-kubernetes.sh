#!/usr/bin/env bash
# Installs what the single-node test cluster (test/support/kubernetes.ts) runs, as root:
#   /usr/local/lib/flashpods/kubernetes/<version>/{kube-apiserver,kube-controller-manager,
#     kube-scheduler,kubelet}   built from k8s.io/kubernetes@<version> (Go module proxy)
#   /usr/local/lib/flashpods/kubernetes/<version>/etcd   built from go.etcd.io/etcd/server/v3
#   containerd and containernetworking-plugins (+ runc) from Debian, with apt.
# Nothing is linked into PATH: the cluster is a test fixture, its users name the directory.
# Idempotent: a binary that exists and reports the wanted version is not rebuilt.
# Cold build on 2 cores: several minutes (kube-apiserver carries most of the shared packages;
# the others then reuse Go's build cache). Needs Go >= 1.26 and the Go module proxy.
#
# Why a wrapper module (shared/notes/kubernetes-here.md): `go install k8s.io/kubernetes/cmd/X@v`
# is refused because k8s.io/kubernetes's go.mod has replace directives (its 33 `./staging`
# modules), and the module zip has no staging/ directory. The wrapper requires
# k8s.io/kubernetes@<version> and replaces each staging module with its published release
# k8s.io/<name>@v0.<minor>.<patch> (the same source, tagged from staging/ at the release), read
# from k8s.io/kubernetes's own go.mod so the list cannot drift. etcd: the same, for its replace
# directives; its wrapper's main calls etcdmain.Main like etcd's own main does.
#
# Env: KUBERNETES_VERSION (default v1.37.2), ETCD_VERSION (default v3.6.16),
#      KUBERNETES_PREFIX (default /usr/local/lib/flashpods/kubernetes).
set -euo pipefail

[[ $EUID -eq 0 ]] || { echo "setup-kubernetes.sh: must run as root" >&2; exit 1; }

VERSION=${KUBERNETES_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
PREFIX=${KUBERNETES_PREFIX:-/usr/local/lib/flashpods/kubernetes}
DEST="$PREFIX/$VERSION"
KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
APT_PACKAGES=(containerd runc containernetworking-plugins)
# v1.37.2 -> the staging modules' tag v0.37.2
STAGING_VERSION="v0.${VERSION#v1.}"

log() { echo "setup-kubernetes: $*"; }
die() { echo "setup-kubernetes.sh: $*" >&2; exit 1; }

# have_version BIN: true when $DEST/BIN runs and prints our version.
have_version() {
  local out
  [[ -x "$DEST/$1" ]] || return 1
  out=$("$DEST/$1" --version 2>&1) || return 1
  if [[ $1 == etcd ]]; then
    grep -qx "etcd Version: ${ETCD_VERSION#v}" <<<"$out"
  else
    [[ $out == "Kubernetes $VERSION" ]]
  fi
}

ensure_toolchain() {
  # `sudo` resets PATH to secure_path, which lacks the usual Go install dir.
  command -v go >/dev/null || { [[ -x /usr/local/go/bin/go ]] && export PATH="/usr/local/go/bin:$PATH"; }
  command -v go >/dev/null || die "go is not installed (need Go >= 1.26)"
}

# go_or_explain DIR ARGS...: runs `go ARGS` in DIR; on failure names the module the proxy refused
# (if that is why), so the operator knows which download to look at.
go_or_explain() {
  local dir=$1 err
  shift
  err=$(mktemp)
  if (cd "$dir" && go "$@") 2>"$err"; then rm -f "$err"; return 0; fi
  if grep -qE '403|404|410|not available' "$err"; then
    log "the Go module proxy refused a download: $(grep -m1 -E '403|404|410|not available' "$err")"
  fi
  cat "$err" >&2
  rm -f "$err"
  die "go $* failed in the wrapper module (see above)"
}

# The wrapper module for the four Kubernetes commands, in $1.
kube_wrapper() {
  local w=$1 src
  src=$(cd "$w" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n $src && -f $src/go.mod ]] || die "cannot download k8s.io/kubernetes@$VERSION from the Go module proxy"
  {
    echo "module flashpods.local/kubernetes-build"
    echo
    echo "go $(sed -n 's/^go //p' "$src/go.mod")"
    echo
    echo "require k8s.io/kubernetes $VERSION"
    echo
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/[a-z0-9-]*$#replace \1 => \1 '"$STAGING_VERSION"'#p' "$src/go.mod"
  } >"$w/go.mod"
  local n
  n=$(grep -c '^replace ' "$w/go.mod")
  ((n > 0)) || die "k8s.io/kubernetes@$VERSION's go.mod lists no ./staging replaces: the recipe needs updating"
  log "wrapper module: k8s.io/kubernetes@$VERSION with $n staging modules at $STAGING_VERSION"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for b in "${KUBE_BINS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b/app\""; done
    echo ")"
  } >"$w/tools.go"
}

etcd_wrapper() {
  local w=$1
  printf 'module flashpods.local/etcd-build\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$w/go.mod"
  cat >"$w/main.go" <<'EOF'
// etcd's own main (go.etcd.io/etcd/v3), without its module's replace directives.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
}

# build_into BIN WRAPPER_DIR PACKAGE LDFLAGS
build_into() {
  local bin=$1 w=$2 pkg=$3 ldflags=$4 start
  start=$(date +%s)
  log "building $bin (first build takes minutes)"
  # -s -w: no symbol table or DWARF (a third smaller, faster to link); these are test fixtures.
  go_or_explain "$w" build -trimpath -ldflags "-s -w $ldflags" -o "$w/bin/$bin" "$pkg"
  install -d -m 0755 "$DEST"
  install -m 0755 "$w/bin/$bin" "$DEST/$bin.new"
  mv -f "$DEST/$bin.new" "$DEST/$bin"
  have_version "$bin" || die "$DEST/$bin does not report the wanted version: $("$DEST/$bin" --version 2>&1 || true)"
  log "built $bin in $(($(date +%s) - start)) s"
}

kube_ldflags() {
  local major=${VERSION#v} minor
  minor=${major#*.}; minor=${minor%%.*}; major=${major%%.*}
  local f=()
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    f+=("-X $pkg.gitVersion=$VERSION" "-X $pkg.gitMajor=$major" "-X $pkg.gitMinor=$minor" "-X $pkg.gitTreeState=clean")
  done
  echo "${f[*]}"
}

# --- containerd, runc, CNI plugins (Debian) ---
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package enables a system containerd; the test cluster starts its own (own config, own
  # socket), so one we just installed is not left running under systemd.
  if [[ " ${missing[*]} " == *" containerd "* ]] && [[ -d /run/systemd/system ]]; then
    systemctl disable --now containerd >/dev/null 2>&1 || true
  fi
fi
for f in /usr/bin/containerd /usr/bin/ctr /usr/sbin/runc /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback /usr/lib/cni/portmap; do
  [[ -x $f ]] || die "$f is missing after installing ${APT_PACKAGES[*]}"
done

# --- Kubernetes and etcd binaries ---
todo_kube=()
for b in "${KUBE_BINS[@]}"; do have_version "$b" || todo_kube+=("$b"); done
todo_etcd=false
have_version etcd || todo_etcd=true

if ((${#todo_kube[@]} > 0)) || $todo_etcd; then
  ensure_toolchain
  tmp=$(mktemp -d)
  trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
  total_start=$(date +%s)
  if ((${#todo_kube[@]} > 0)); then
    mkdir -p "$tmp/kube"
    kube_wrapper "$tmp/kube"
    log "resolving dependencies (go mod tidy)"
    GOFLAGS=-mod=mod go_or_explain "$tmp/kube" mod tidy
    ldflags=$(kube_ldflags)
    for b in "${todo_kube[@]}"; do build_into "$b" "$tmp/kube" "k8s.io/kubernetes/cmd/$b" "$ldflags"; done
  fi
  if $todo_etcd; then
    mkdir -p "$tmp/etcd"
    etcd_wrapper "$tmp/etcd"
    GOFLAGS=-mod=mod go_or_explain "$tmp/etcd" mod tidy
    build_into etcd "$tmp/etcd" . ""
  fi
  log "built in $(($(date +%s) - total_start)) s"
fi
log "ready: Kubernetes $VERSION and etcd ${ETCD_VERSION#v} in $DEST; containerd $(dpkg-query -W -f='${Version}' containerd)"
