#!/usr/bin/env bash
# Installs SPIRE (spire-server + spire-agent) from source with `go install`, as root, into
#   /usr/local/lib/flashpods/spire/<version>/{spire-server,spire-agent}
# and links them as /usr/local/bin/spire-server and /usr/local/bin/spire-agent.
# Idempotent: when both cached binaries exist and report the wanted version, nothing is built.
# The first build takes several minutes on 2 cores (the server needs cgo + gcc for sqlite3).
# Version: v1.15.3 (shared/notes/spire.md). Its newer Docker client attests rootful Podman 4.3.1
# (API 1.41) here without the feared API-version error, so the v1.15.1 fallback is not needed.
# Needs Go ≥ 1.26.6 (SPIRE's go.mod) and the Go module proxy; no other network.
#
# Env: SPIRE_VERSION (default v1.15.3), SPIRE_PREFIX (default /usr/local/lib/flashpods/spire).
set -euo pipefail

[[ $EUID -eq 0 ]] || { echo "setup-spire.sh: must run as root" >&2; exit 1; }

VERSION=${SPIRE_VERSION:-v1.15.3}
PREFIX=${SPIRE_PREFIX:-/usr/local/lib/flashpods/spire}
DEST="$PREFIX/$VERSION"
BINS=(spire-server spire-agent)

log() { echo "setup-spire: $*"; }

have_version() { # have_version BIN -> true when $DEST/BIN runs and prints our version
  local out
  [[ -x "$DEST/$1" ]] || return 1
  out=$("$DEST/$1" --version 2>&1) || return 1
  [[ $out == "${VERSION#v}" || $out == "${VERSION#v}+"* ]]
}

ensure_toolchain() {
  # `sudo` resets PATH to secure_path, which lacks the usual Go install dir.
  command -v go >/dev/null || { [[ -x /usr/local/go/bin/go ]] && export PATH="/usr/local/go/bin:$PATH"; }
  command -v go >/dev/null || { echo "setup-spire.sh: go is not installed (need Go >= 1.26.6)" >&2; exit 1; }
  if ! command -v gcc >/dev/null; then
    log "installing gcc (cgo, for the sqlite3 datastore)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
  fi
}

# build BIN: `go install …@VERSION` when the module proxy allows it. Fallback (needed here):
#  1. proxy.golang.org answers 403 for github.com/spiffe/spire/@v/list, which `go install
#     pkg@version` reads to check for deprecations (.info/.mod/.zip of v1.15.3 are served), so
#     download that exact module version and build the command inside a copy of it. Same result:
#     SPIRE's go.mod has no replace directives, so both resolve the same dependency graph, checked
#     against SPIRE's own go.sum (-mod=readonly).
#  2. the proxy also refuses the zip of github.com/Keyfactor/ejbca-go-client-sdk@v1.1.0 (403 "This
#     module version is not available"), imported only by the server's optional EJBCA
#     UpstreamAuthority plugin. When that zip cannot be downloaded, the copy's plugin catalog
#     drops that one plugin (2 lines) — Flashpods configures no UpstreamAuthority at all. Nothing
#     else in SPIRE is touched; `spire-server --version` then reports "1.15.3+no-ejbca".
build() {
  local bin=$1 tmp start dir tag=${VERSION#v} # SPIRE parses its version as semver: no "v"
  tmp=$(mktemp -d)
  trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' RETURN
  start=$(date +%s)
  # The server needs cgo (its sql datastore uses mattn/go-sqlite3). The agent is built without
  # cgo, i.e. fully static, so the same binary can be bind-mounted into any job container as a
  # Workload API client (`spire-agent api fetch jwt …`), busybox or glibc alike.
  if [[ $bin == spire-server ]]; then export CGO_ENABLED=1; else export CGO_ENABLED=0; fi
  log "building $bin@$VERSION (first build takes minutes)"
  if (cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false go install \
      -ldflags "-X github.com/spiffe/spire/pkg/common/version.gittag=$tag" \
      "github.com/spiffe/spire/cmd/$bin@$VERSION") 2>"$tmp/err"; then
    :
  else
    log "go install failed: $(grep -m1 -E 'go: |403' "$tmp/err")"
    log "building from the downloaded module instead"
    dir=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/spiffe/spire@$VERSION" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -n $dir && -d $dir ]] || { echo "setup-spire.sh: cannot download github.com/spiffe/spire@$VERSION" >&2; exit 1; }
    cp -r "$dir" "$tmp/src"
    chmod -R u+w "$tmp/src"
    if [[ $bin == spire-server ]] && ! (cd "$tmp/src" && go mod download github.com/Keyfactor/ejbca-go-client-sdk) 2>>"$tmp/err"; then
      log "the module proxy refuses github.com/Keyfactor/ejbca-go-client-sdk: building without the EJBCA UpstreamAuthority plugin"
      sed -i -e '\#"github.com/spiffe/spire/pkg/server/plugin/upstreamauthority/ejbca"#d' -e '/ejbca\.BuiltIn(),/d' \
        "$tmp/src/pkg/server/catalog/upstreamauthority.go"
      rm -rf "$tmp/src/pkg/server/plugin/upstreamauthority/ejbca"
      tag="$tag+no-ejbca"
    fi
    (cd "$tmp/src" && GOFLAGS="-buildvcs=false -mod=readonly" go build -trimpath \
      -ldflags "-X github.com/spiffe/spire/pkg/common/version.gittag=$tag" -o "$tmp/bin/$bin" "./cmd/$bin")
  fi
  install -d -m 0755 "$DEST"
  install -m 0755 "$tmp/bin/$bin" "$DEST/$bin.new"
  mv -f "$DEST/$bin.new" "$DEST/$bin"
  log "built $bin in $(( $(date +%s) - start )) s"
}

toolchain_ready=false
for b in "${BINS[@]}"; do
  if ! have_version "$b"; then
    $toolchain_ready || { ensure_toolchain; toolchain_ready=true; }
    build "$b"
  fi
  have_version "$b" || { echo "setup-spire.sh: $DEST/$b does not report $VERSION: $("$DEST/$b" --version 2>&1 || true)" >&2; exit 1; }
  ln -sfn "$DEST/$b" "/usr/local/bin/$b"
done
log "ready: $("$DEST/spire-server" --version 2>&1) in $DEST"
