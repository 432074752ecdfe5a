# Base of the Flashpods host: user and group `flashpods` (lingering, for rootless Podman; the token
# service's own user is in token-service.nix), the directories of shared/spec/host.md with their
# exact owners and modes, operator tools.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flashpods;
  paths = import ./paths.nix;
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    users.groups.flashpods.gid = cfg.uid;
    users.users.flashpods = {
      uid = cfg.uid;
      group = "flashpods";
      isSystemUser = true;
      description = "Flashpods API and job containers";
      home = paths.home;
      createHome = true;
      homeMode = "700";
      # Rootless Podman runs in the user's systemd manager: keep it running without a login.
      linger = true;
      subUidRanges = [ { startUid = cfg.subIdStart; count = 65536; } ];
      subGidRanges = [ { startGid = cfg.subIdStart; count = 65536; } ];
    };

    # Owners and modes exactly as the contract's table. `-` ages: systemd-tmpfiles-clean never
    # ages out uploads or artifacts (Flashpods applies its own TTLs); the `x` line keeps /tmp's
    # own cleanup away from them too. Sockets are created by their services (podman.nix,
    # token-service.nix, spire.nix); the `z` lines only fix modes of operator-made files.
    systemd.tmpfiles.rules = [
      "d ${paths.tmpRoot} 0755 root root -"
      "x ${paths.tmpRoot}"
      "d ${paths.uploads} 0755 flashpods flashpods -"
      "d ${paths.sealedUploads} 0750 flashpods flashpods -"
      "d ${paths.stateRoot} 0755 root root -"
      "d ${paths.artifacts} 0755 flashpods flashpods -"
      "d ${paths.dbDir} 0755 flashpods flashpods -"
      "d ${paths.containerLogs} 0700 flashpods flashpods -"
      "d ${paths.logs} 0755 flashpods flashpods -"
      "d ${paths.run} 0750 flashpods flashpods -"
      "d ${paths.etc} 0700 root root -"
      "z ${paths.secretsFile} 0600 root root -"
      "z ${paths.apiTokenFile} 0600 root root -"
    ];

    # The API token is generated on first boot if the operator has not put one in place
    # (`openssl rand -hex 32`); the secrets file holds real keys and must be written by hand.
    systemd.services.flashpods-api-token-init = {
      description = "Create the Flashpods API token if missing";
      wantedBy = [ "multi-user.target" ];
      before = [ "flashpods-api.service" ];
      after = [ "systemd-tmpfiles-setup.service" ];
      unitConfig.ConditionPathExists = "!${paths.apiTokenFile}";
      serviceConfig = {
        Type = "oneshot";
        UMask = "0077";
      };
      script = ''
        ${pkgs.openssl}/bin/openssl rand -hex 32 > ${paths.apiTokenFile}.new
        chmod 0600 ${paths.apiTokenFile}.new
        mv ${paths.apiTokenFile}.new ${paths.apiTokenFile}
      '';
    };

    # The API (flashpods) and the token service (flashpods-tokens) are different uids, so neither
    # can ptrace the other anyway; Yama at 1 also keeps either from tracing a process of its own
    # uid that is not its descendant.
    boot.kernel.sysctl."kernel.yama.ptrace_scope" = lib.mkDefault 1;

    environment.systemPackages = [ cfg.package pkgs.sqlite pkgs.curl pkgs.jq pkgs.wireguard-tools ];
  };
}
