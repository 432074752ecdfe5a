#!/usr/bin/env bash
# CI check of the Nix code in nix/ — offline (no Nix store, no nixpkgs checkout, no network).
#
#  1. `nix-instantiate --parse` of every .nix file under nix/ and test/nix/;
#  2. evaluation of the flake and all its NixOS modules with test/nix/eval.nix: option
#     declarations, defaults and types, mkIf/mkMerge/mkDefault/mkForce, conflicting definitions,
#     the modules' assertions (the host as deployed must pass them; the placeholder laptop key and
#     an address changed without the tested ruleset must be refused), over the stand-ins for lib
#     and pkgs of test/nix/stubs.nix;
#  3. if `spire-server` / `spire-agent` are on PATH, their `validate` of the rendered configs.
#
# What it cannot do offline: check the options the modules set against NixOS itself, or build
# the package and the system — run `nix flake check ./nix` (with network) for that.
#
# Usage: scripts/nix-check.sh [--json FILE] [--host-module FILE.nix]
#   --json         FILE receives the evaluation report
#   --host-module  a module added to the deployed host (its site values), e.g. scripts/vm/site.nix
# Installs Debian's nix-bin when nix-instantiate is missing (needs root then).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
json_out=""
site_modules=()
while (($#)); do
  case $1 in
    --json) json_out=$2; shift 2 ;;
    --host-module) site_modules+=("(/. + \"$(realpath "$2")\")"); shift 2 ;;
    *) echo "usage: $0 [--json FILE] [--host-module FILE.nix]" >&2; exit 2 ;;
  esac
done

log() { echo "nix-check: $*"; }

if ! command -v nix-instantiate >/dev/null 2>&1; then
  [[ $EUID -eq 0 ]] || { echo "nix-check: nix-instantiate is missing; run as root to install nix-bin, or: apt-get install nix-bin" >&2; exit 1; }
  log "installing nix-bin"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends nix-bin >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends nix-bin >/dev/null; }
fi

# A throw-away Nix state: nothing is written to /nix, no daemon, no store (dummy://).
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
export NIX_STATE_DIR=$state/state NIX_LOG_DIR=$state/log NIX_CONF_DIR=$state/conf XDG_CACHE_HOME=$state/cache HOME=$state
mkdir -p "$NIX_CONF_DIR"
printf 'build-users-group =\nexperimental-features =\n' >"$NIX_CONF_DIR/nix.conf"
nix_args=(--store dummy://)

# 1. syntax
mapfile -t files < <(cd "$ROOT" && find nix test/nix -name '*.nix' -type f | sort)
((${#files[@]} > 0)) || { echo "nix-check: no .nix files found under nix/" >&2; exit 1; }
failed=0
for f in "${files[@]}"; do
  if ! out=$(nix-instantiate "${nix_args[@]}" --parse "$ROOT/$f" 2>&1 >/dev/null); then
    echo "nix-check: PARSE ERROR in $f:" >&2
    echo "$out" >&2
    failed=1
  fi
done
((failed == 0)) || exit 1
log "parsed ${#files[@]} files"

# 2. evaluation
report=$state/report.json
if ! nix-instantiate "${nix_args[@]}" --eval --strict --json --arg repo "$ROOT" --arg siteModules "[ ${site_modules[*]} ]" "$ROOT/test/nix/eval.nix" >"$report" 2>"$state/eval.err"; then
  echo "nix-check: EVALUATION FAILED:" >&2
  cat "$state/eval.err" >&2
  exit 1
fi
[[ -z $json_out ]] || cp "$report" "$json_out"

node - "$report" <<'EOF'
const r = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
if (!r.ok) {
  console.error('nix-check: module checks failed:');
  for (const p of r.problems) console.error(`  - ${p}`);
  process.exit(1);
}
const units = Object.keys(r.deployed.systemd.services).length;
console.log(`nix-check: evaluated ${r.files.length} module files (flake: nixosConfigurations ${r.flake.nixosConfigurations.join(', ')}; ` +
  `${r.flake.nixosModules.length} nixosModules), ${units} system units; assertions hold, guards fire`);
EOF

# 3. SPIRE's own validation of the rendered configs, where SPIRE is installed
for component in server agent; do
  bin=spire-$component
  if command -v "$bin" >/dev/null 2>&1; then
    conf=$state/$component.conf
    node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.stdout.write(r.deployed.environment.etc[`spire/${process.argv[2]}.conf`].text)' "$report" "$component" >"$conf"
    "$bin" validate -config "$conf" || { echo "nix-check: $bin validate rejected the rendered /etc/spire/$component.conf" >&2; exit 1; }
    log "$bin validate: /etc/spire/$component.conf ok"
  else
    log "skipped $bin validate ($bin not installed)"
  fi
done
log "ok"
