# The FLASHPODS_* environment both Flashpods units share: the production profile plus every
# path of the contract spelled out (names from SETTINGS in actors/contract/config.ts; test/nix
# checks each name exists there and that every `paths.*` setting is given).
cfg:
let
  paths = import ./paths.nix;
  net = cfg.network;
in
{
  FLASHPODS_PROFILE = "production";
  FLASHPODS_DB = paths.db;
  FLASHPODS_UPLOADS_DIR = paths.uploads;
  FLASHPODS_SEALED_UPLOADS_DIR = paths.sealedUploads;
  FLASHPODS_RSYNC_TRANSFERS_DIR = paths.rsyncTransfers;
  FLASHPODS_ARTIFACTS_DIR = paths.artifacts;
  FLASHPODS_LOGS_DIR = paths.logs;
  FLASHPODS_CONTAINER_LOGS_DIR = paths.containerLogs;
  FLASHPODS_API_TOKEN_FILE = paths.apiTokenFile;
  FLASHPODS_API_SOCKET = paths.apiSocket;
  FLASHPODS_PODMAN_SOCKET = paths.podmanSocket;
  FLASHPODS_SECRETS_FILE = paths.secretsFile;
  FLASHPODS_TOKEN_SOCKET = paths.tokenSocket;
  FLASHPODS_SPIRE_SOCKET = paths.spireSocket;
  FLASHPODS_LISTEN = "${net.serverAddress}:${toString net.apiPort}";
  FLASHPODS_LOG_FORMAT = "json";
  FLASHPODS_LOG_LEVEL = cfg.logLevel;
  FLASHPODS_PODMAN_ROOTLESS = "true";
  FLASHPODS_CONTAINER_NETWORK = "slirp4netns";
}
// (if cfg.capacity.cpus != null then { FLASHPODS_CAPACITY_CPUS = toString cfg.capacity.cpus; } else { })
// (if cfg.capacity.memoryGb != null then { FLASHPODS_CAPACITY_MEMORY_GB = toString cfg.capacity.memoryGb; } else { })
// cfg.extraEnvironment
