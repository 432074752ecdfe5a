# The rsync daemon the laptop uploads through: on the tunnel address only, the laptop only,
# module `uploads` → /tmp/flashpods/uploads, written as user flashpods. (The firewall drops
# everyone else before rsync sees them; `hosts allow` is the second lock.)
#
# Its own unit and config file rather than NixOS's services.rsyncd, whose settings schema
# changed between releases (`global` → `globalSection`/`sections`); the rendered file is
# /etc/rsyncd.conf, and test/nix runs a real rsync daemon on it.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flashpods;
  net = cfg.network;
  paths = import ./paths.nix;
  # Registers each transfer while it runs (paths.rsyncTransfers), so finalize can refuse while
  # rsync may still write into the upload (docs/operations.md "Uploads: what finalize seals").
  transferHook = "${cfg.package}/lib/node_modules/flashpods/scripts/rsyncd/transfer-hook.sh";

  conf = ''
    # Flashpods rsync daemon (nix/modules/rsyncd.nix)
    address = ${net.serverAddress}
    port = ${toString net.rsyncPort}
    hosts allow = ${net.laptopAddress}
    hosts deny = *
    max connections = ${toString cfg.rsync.maxConnections}
    use chroot = yes
    timeout = ${toString cfg.rsync.timeout}
    # hosts allow is an address: a reverse DNS lookup per connection only adds delay (≈ 10 s
    # where no resolver answers, as on a host whose tunnel has no DNS).
    reverse lookup = no
    lock file = /run/rsyncd/rsyncd.lock

    [uploads]
      path = ${paths.uploads}
      comment = Flashpods uploads
      read only = no
      list = yes
      uid = flashpods
      gid = flashpods
      pre-xfer exec = ${transferHook} start ${paths.rsyncTransfers}
      post-xfer exec = ${transferHook} end ${paths.rsyncTransfers}
  '';
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    environment.etc."rsyncd.conf".text = conf;

    systemd.services.flashpods-rsyncd = {
      description = "rsync daemon for Flashpods uploads (${net.serverAddress}:${toString net.rsyncPort})";
      wantedBy = [ "multi-user.target" ];
      # It binds the tunnel address: start once wg0 is up, retry if the address is not there yet.
      requires = [ "wireguard-${net.interface}.service" ];
      after = [ "wireguard-${net.interface}.service" "systemd-tmpfiles-setup.service" ];
      restartTriggers = [ conf ];
      serviceConfig = {
        ExecStart = "${pkgs.rsync}/bin/rsync --daemon --no-detach --config=/etc/rsyncd.conf";
        Restart = "on-failure";
        RestartSec = 2;
        # paths.rsyncRun: lock file and the transfer register; root 0755, so the API reads the
        # register and cannot write it. Emptied when the daemon stops (its transfers end with it).
        RuntimeDirectory = "rsyncd";
        RuntimeDirectoryMode = "0755";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = false;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectControlGroups = true;
        ReadWritePaths = [ paths.uploads ];
        # Port 873, chroot into the module, then become flashpods.
        CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" "CAP_SYS_CHROOT" "CAP_SETUID" "CAP_SETGID" ];
        RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
      };
    };
  };
}
