# The API unit: `node cli/flashpods.mjs serve` (scheduler, containers and api actors) as user
# flashpods, listening on 10.0.0.1:8080. It must not read the secrets: /etc/flashpods/secrets.json
# is root 0600 and hidden from its mount namespace, and so is every systemd credentials directory
# (the token unit, user flashpods-tokens, gets the secrets as a credential only that uid can read):
# /run/credentials is an empty read-only tmpfs here. Ptrace-style access to the token unit is
# refused by the kernel (another uid; Yama, configuration.nix) and by the syscall filter. It
# cannot replace the token socket: that lives in /run/flashpods-tokens, not in its /run/flashpods.
# Its own API token (root 0600) is copied for it by a privileged ExecStartPre into its runtime
# directory.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flashpods;
  paths = import ./paths.nix;
  net = cfg.network;
  pkg = cfg.package;
  root = "${pkg}/lib/node_modules/flashpods";
  runtimeDir = "/run/flashpods-api";
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    systemd.services.flashpods-api = {
      description = "Flashpods API (${net.serverAddress}:${toString net.apiPort})";
      wantedBy = [ "multi-user.target" ];
      # network → podman socket → spire-server → spire-agent → flashpods (shared/spec/host.md).
      requires = [ "wireguard-${net.interface}.service" "flashpods-podman-socket.service" ];
      wants = [ "network-online.target" "spire-agent.service" "flashpods-token-service.service" ];
      after = [
        "network-online.target"
        "wireguard-${net.interface}.service"
        "systemd-tmpfiles-setup.service"
        "flashpods-api-token-init.service"
        "flashpods-podman-socket.service"
        "spire-server.service"
        "spire-agent.service"
        "flashpods-token-service.service"
      ];
      environment = import ./environment.nix cfg // {
        # A copy of /etc/flashpods/api-token only this unit's user can read (ExecStartPre below).
        FLASHPODS_API_TOKEN_FILE = "${runtimeDir}/api-token";
        # tsx's compile cache; /tmp itself is read-only here (ProtectSystem=strict, shared /tmp).
        TMPDIR = "/var/cache/flashpods-api";
      };
      serviceConfig = import ./hardening.nix // {
        User = "flashpods";
        Group = "flashpods";
        WorkingDirectory = root;
        ExecStartPre = "+${pkgs.coreutils}/bin/install -m 0400 -o flashpods -g flashpods ${paths.apiTokenFile} ${runtimeDir}/api-token";
        ExecStart = "${pkg.nodejs}/bin/node ${root}/cli/flashpods.mjs serve";
        RuntimeDirectory = "flashpods-api";
        RuntimeDirectoryMode = "0700";
        # /tmp/flashpods is shared with rsyncd and Podman: no private /tmp. Each writable tree is
        # ONE entry — separate bind mounts for uploads and sealed would make finalize's rename
        # cross a mount point (EXDEV).
        PrivateTmp = false;
        ReadWritePaths = [ paths.tmpRoot paths.stateRoot paths.logs paths.run ];
        ReadOnlyPaths = [ root ];
        InaccessiblePaths = [ "-${paths.secretsFile}" ];
        TemporaryFileSystem = [ "/run/credentials:ro" ];
        CacheDirectory = "flashpods-api";
        RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
        # Shutdown grace of the supervisor (FLASHPODS_SHUTDOWN_GRACE_SECONDS, 15 s) plus margin.
        TimeoutStopSec = 30;
      };
    };

    # "Rotating the API token = replace the file": the unit reads a copy, so restart on change.
    systemd.paths.flashpods-api-token = {
      wantedBy = [ "multi-user.target" ];
      pathConfig = {
        PathChanged = paths.apiTokenFile;
        Unit = "flashpods-api-token-changed.service";
      };
    };
    systemd.services.flashpods-api-token-changed = {
      description = "Restart the Flashpods API after its token file changed";
      serviceConfig.Type = "oneshot";
      script = "${config.systemd.package}/bin/systemctl try-restart flashpods-api.service";
    };
  };
}
