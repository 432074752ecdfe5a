# Sourced first by the README's two commands (scripts/dev.sh, scripts/test.sh), which need root:
# they install system packages and run rootful Podman and SPIRE. Root runs them directly — a
# fresh Debian 12 root has no sudo at all. Anyone else is re-run under sudo, keeping the
# environment (FLASHPODS_*, RSYNCD_PORT, …) and PATH (sudo would reset it to secure_path,
# which may lack the Node the caller uses).
if [[ $EUID -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "${0##*/}: run it as root (it installs system packages and runs rootful Podman); there is no sudo here to do it for you" >&2
    exit 1
  fi
  exec sudo -E env "PATH=$PATH" bash "$0" "$@"
fi
