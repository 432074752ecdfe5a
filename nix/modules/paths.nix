# The host paths of the contract (shared/spec/host.md, "Users, directories, sockets"), in one
# place. They are the `production` defaults of actors/contract/config.ts as well; test/nix checks
# that the two agree and that both units get every one of them as FLASHPODS_* variables.
rec {
  tmpRoot = "/tmp/flashpods";
  uploads = "${tmpRoot}/uploads";
  # Finalized uploads are renamed here, out of the rsync module: same filesystem as uploads.
  sealedUploads = "${tmpRoot}/sealed";

  stateRoot = "/var/lib/flashpods";
  artifacts = "${stateRoot}/artifacts";
  dbDir = "${stateRoot}/db";
  db = "${dbDir}/flashpods.db";
  # Home of user flashpods: rootless Podman's storage (~/.local/share/containers) lives here.
  home = "${stateRoot}/home";

  logs = "/var/log/flashpods";

  etc = "/etc/flashpods";
  secretsFile = "${etc}/secrets.json";
  apiTokenFile = "${etc}/api-token";

  run = "/run/flashpods";
  podmanSocket = "${run}/podman.sock";
  tokenSocket = "${run}/token.sock";
  # The API for operators on the host (the firewall drops the host's own TCP to the API port).
  apiSocket = "${run}/api.sock";

  spireSocketDir = "/run/spire/sockets";
  spireSocket = "${spireSocketDir}/agent.sock";
  spireServerSocket = "/run/spire/server/api.sock";
  spireEtc = "/etc/spire";
  spireServerData = "/var/lib/spire/server";
  spireAgentData = "/var/lib/spire/agent";
}
