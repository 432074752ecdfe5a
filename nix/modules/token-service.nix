# The token unit: `node cli/flashpods.mjs serve --actors tokens` as user flashpods (the socket
# /run/flashpods/token.sock must be flashpods:flashpods 0660 in a flashpods-owned 0750 directory),
# on that unix socket only (PrivateNetwork: no TCP at all). It alone gets
# /etc/flashpods/secrets.json, as a systemd credential — the API unit cannot see credentials
# directories (flashpods-api.nix); a change of the file restarts it (the contract's "reloaded
# when it changes").
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flashpods;
  paths = import ./paths.nix;
  pkg = cfg.package;
  root = "${pkg}/lib/node_modules/flashpods";
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    systemd.services.flashpods-token-service = {
      description = "Flashpods token service (${paths.tokenSocket})";
      wantedBy = [ "multi-user.target" ];
      requires = [ "spire-agent.service" ];
      after = [
        "systemd-tmpfiles-setup.service"
        "flashpods-podman-socket.service"
        "spire-server.service"
        "spire-agent.service"
        "spire-register-entries.service"
      ];
      environment = import ./environment.nix cfg // {
        FLASHPODS_SECRETS_FILE = "%d/secrets.json";
        TMPDIR = "/var/cache/flashpods-token-service";
      };
      serviceConfig = import ./hardening.nix // {
        User = "flashpods";
        Group = "flashpods";
        WorkingDirectory = root;
        ExecStart = "${pkg.nodejs}/bin/node ${root}/cli/flashpods.mjs serve --actors tokens";
        LoadCredential = [ "secrets.json:${paths.secretsFile}" ];
        PrivateTmp = true;
        PrivateNetwork = true;
        RestrictAddressFamilies = [ "AF_UNIX" ];
        ReadWritePaths = [ paths.run ];
        ReadOnlyPaths = [ root paths.spireSocketDir ];
        InaccessiblePaths = [ "-${paths.tmpRoot}" "-${paths.stateRoot}" "-${paths.logs}" "-/run/flashpods-api" ];
        CacheDirectory = "flashpods-token-service";
        TimeoutStopSec = 30;
      };
    };

    systemd.paths.flashpods-token-secrets = {
      wantedBy = [ "multi-user.target" ];
      pathConfig = {
        PathChanged = paths.secretsFile;
        Unit = "flashpods-token-secrets-changed.service";
      };
    };
    systemd.services.flashpods-token-secrets-changed = {
      description = "Restart the Flashpods token service after the secrets file changed";
      serviceConfig.Type = "oneshot";
      script = "${config.systemd.package}/bin/systemctl try-restart flashpods-token-service.service";
    };
  };
}
