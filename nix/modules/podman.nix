# Rootless Podman for user flashpods, with Docker compatibility. ONE Podman API service (in the
# user's own systemd manager, kept running by lingering) listens on /run/flashpods/podman.sock
# (flashpods:flashpods 0660, what Flashpods' dockerode uses), and systemd links the per-uid
# template path /run/user/<uid>/podman/podman.sock to it — the path SPIRE's docker attestor
# dials for rootless containers (shared/spec/host.md, **Resolved**; shared/notes/spire.md).
# The real socket lives outside /run/user so the API unit can keep ProtectHome=yes.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flashpods;
  paths = import ./paths.nix;
  podman = config.virtualisation.podman.package;
  uid = toString cfg.uid;
  templateSocket = "/run/user/${uid}/podman/podman.sock";
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    virtualisation.podman = {
      enable = true;
      dockerCompat = true;
      # Job containers use user-mode networking (FLASHPODS_CONTAINER_NETWORK=slirp4netns).
      extraPackages = [ pkgs.slirp4netns ];
    };
    virtualisation.containers.enable = true;

    # Rootless --cpus/--memory need these cgroup v2 controllers delegated to user managers.
    systemd.services."user@".serviceConfig.Delegate = "cpu cpuset io memory pids";

    # NixOS enables Podman's stock user socket for every user; for flashpods the socket below
    # replaces it (it owns the template path through Symlinks=).
    systemd.user.sockets.podman.unitConfig.ConditionUser = "!flashpods";

    systemd.user.sockets.flashpods-podman = {
      description = "Podman API socket of user flashpods";
      wantedBy = [ "sockets.target" ];
      unitConfig.ConditionUser = "flashpods";
      listenStreams = [ paths.podmanSocket ];
      socketConfig = {
        SocketMode = "0660";
        Symlinks = [ "%t/podman/podman.sock" ];
        RemoveOnStop = true;
      };
    };

    systemd.user.services.flashpods-podman = {
      description = "Podman API service of user flashpods";
      unitConfig.ConditionUser = "flashpods";
      requires = [ "flashpods-podman.socket" ];
      after = [ "flashpods-podman.socket" ];
      serviceConfig = {
        # As Podman's own podman.service: socket-activated, containers outlive a restart.
        Type = "exec";
        KillMode = "process";
        Delegate = true;
        ExecStart = "${podman}/bin/podman --log-level=info system service --time=0";
      };
    };

    # "podman socket" in the service order of host.md: system units cannot depend on user units,
    # so this oneshot starts flashpods' manager and holds until the API answers on both paths.
    systemd.services.flashpods-podman-socket = {
      description = "Podman API of user flashpods answers (on ${paths.podmanSocket} and the SPIRE template path)";
      wantedBy = [ "multi-user.target" ];
      requires = [ "user@${uid}.service" ];
      after = [ "network.target" "systemd-tmpfiles-setup.service" "user@${uid}.service" ];
      path = [ pkgs.curl pkgs.coreutils ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        User = "flashpods";
        Group = "flashpods";
      };
      script = ''
        for _ in $(seq 1 90); do
          if curl -fsS --max-time 5 --unix-socket ${paths.podmanSocket} http://podman/_ping >/dev/null 2>&1 \
            && curl -fsS --max-time 5 --unix-socket ${templateSocket} http://podman/_ping >/dev/null 2>&1; then
            exit 0
          fi
          sleep 1
        done
        echo "the Podman API of user flashpods does not answer on ${paths.podmanSocket} and ${templateSocket};" \
          "check: systemctl --user -M flashpods@ status flashpods-podman.socket; loginctl show-user flashpods" >&2
        exit 1
      '';
    };

    # Pre-pull the usual images (shared/spec/containers.md) at boot and weekly, through the same
    # API, into flashpods' rootless storage. A failed pull is reported, never blocks Flashpods.
    systemd.services.flashpods-prepull = lib.mkIf cfg.prePullImages {
      description = "Pre-pull job images for Flashpods";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      requires = [ "flashpods-podman-socket.service" ];
      after = [ "network-online.target" "flashpods-podman-socket.service" ];
      startAt = "weekly";
      serviceConfig = {
        Type = "oneshot";
        User = "flashpods";
        Group = "flashpods";
        TimeoutStartSec = "2h";
      };
      script = ''
        failed=0
        for image in ${lib.escapeShellArgs cfg.images}; do
          echo "pulling $image"
          ${podman}/bin/podman --remote --url unix://${paths.podmanSocket} pull --quiet "$image" || { echo "could not pull $image" >&2; failed=$((failed + 1)); }
        done
        [ "$failed" -eq 0 ] || { echo "$failed image(s) not pulled; jobs naming them pull on start" >&2; exit 1; }
      '';
    };
  };
}
