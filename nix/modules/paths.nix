# The host paths of the contract (shared/spec/host.md, "Users, directories, sockets"), in one
# place. They are the `production` defaults of actors/contract/config.ts as well; test/nix checks
# that the two agree and that both units get every one of them as FLASHPODS_* variables.
rec {
  tmpRoot = "/tmp/flashpods";
  uploads = "${tmpRoot}/uploads";
  # Finalized uploads are renamed here, out of the rsync module: same filesystem as uploads.
  sealedUploads = "${tmpRoot}/sealed";
  # The rsync daemon's register of transfers in progress (scripts/rsyncd/transfer-hook.sh, run
  # by the daemon as root): in its own RuntimeDirectory, readable by the API, writable by root only.
  rsyncRun = "/run/rsyncd";
  rsyncTransfers = "${rsyncRun}/transfers";

  stateRoot = "/var/lib/flashpods";
  artifacts = "${stateRoot}/artifacts";
  dbDir = "${stateRoot}/db";
  # conmon's file of each running job's output and the capture's resume point (0700, flashpods).
  containerLogs = "${stateRoot}/container-logs";
  db = "${dbDir}/flashpods.db";
  # Home of user flashpods: rootless Podman's storage (~/.local/share/containers) lives here.
  home = "${stateRoot}/home";

  logs = "/var/log/flashpods";

  etc = "/etc/flashpods";
  secretsFile = "${etc}/secrets.json";
  apiTokenFile = "${etc}/api-token";

  run = "/run/flashpods";
  podmanSocket = "${run}/podman.sock";
  # The token socket has a directory of its own: /run/flashpods belongs to the API's user, who
  # could replace anything in it. Only the token service's user writes here (token-service.nix).
  tokenRun = "/run/flashpods-tokens";
  tokenSocket = "${tokenRun}/token.sock";
  # The API for operators on the host (the firewall drops the host's own TCP to the API port).
  apiSocket = "${run}/api.sock";

  spireSocketDir = "/run/spire/sockets";
  spireSocket = "${spireSocketDir}/agent.sock";
  spireServerSocket = "/run/spire/server/api.sock";
  spireEtc = "/etc/spire";
  spireServerData = "/var/lib/spire/server";
  spireAgentData = "/var/lib/spire/agent";
}
