# The token unit: `node cli/flashpods.mjs serve --actors tokens` as its own user
# `flashpods-tokens`, on the unix socket /run/flashpods-tokens/token.sock only (PrivateNetwork: no
# TCP at all). It alone gets /etc/flashpods/secrets.json (root 0600), as a systemd credential: a
# copy owned by flashpods-tokens that no other uid can read; a change of the file restarts it (the
# contract's "reloaded when it changes").
#
# The socket's directory is flashpods-tokens:flashpods 2750: only the token service can create,
# remove or rename entries in it, so the API's user (flashpods) cannot swap the socket; group
# flashpods may traverse it — rootless job containers run as flashpods and Podman (user flashpods)
# bind-mounts the socket into them. The setgid bit gives the socket the directory's group, so it is
# flashpods-tokens:flashpods 0660 without the token service being in group flashpods (which would
# open /run/flashpods/podman.sock to it). The old path /run/flashpods/token.sock is not served, and
# deliberately not linked either: a link in a directory the API's user owns is as swappable as a
# socket there. Inside containers the socket keeps its path /run/flashpods/token.sock.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flashpods;
  paths = import ./paths.nix;
  pkg = cfg.package;
  root = "${pkg}/lib/node_modules/flashpods";
  user = "flashpods-tokens";
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    users.groups.${user} = { };
    users.users.${user} = {
      isSystemUser = true;
      group = user;
      description = "Flashpods token service (the only reader of the secrets)";
    };

    systemd.tmpfiles.rules = [
      "d ${paths.tokenRun} 2750 ${user} flashpods -"
    ];

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
        User = user;
        Group = user;
        WorkingDirectory = root;
        ExecStart = "${pkg.nodejs}/bin/node ${root}/cli/flashpods.mjs serve --actors tokens";
        LoadCredential = [ "secrets.json:${paths.secretsFile}" ];
        PrivateTmp = true;
        PrivateNetwork = true;
        RestrictAddressFamilies = [ "AF_UNIX" ];
        ReadWritePaths = [ paths.tokenRun ];
        ReadOnlyPaths = [ root paths.spireSocketDir ];
        # Nothing of the API's: not its sockets (Podman's among them), files or runtime directory.
        InaccessiblePaths = [ "-${paths.tmpRoot}" "-${paths.stateRoot}" "-${paths.logs}" "-${paths.run}" "-/run/flashpods-api" ];
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
