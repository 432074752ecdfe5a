# Options of the Flashpods host: the deploy-specific values (keys, capacity, images) and the
# contract's values (addresses, ports, paths), which keep the defaults of shared/spec/host.md.
# Declarations only; every other module imports this file and reads `config.services.flashpods`.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption types;
in
{
  options.services.flashpods = {
    enable = mkEnableOption "the Flashpods host (API, token service, rootless Podman, SPIRE, rsync, WireGuard, firewall)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The Flashpods package, built by Nix from this repository.";
    };

    uid = mkOption {
      type = types.int;
      default = 1500;
      description = ''
        Fixed uid of user `flashpods`. Fixed because paths depend on it: its Podman API socket's
        template path /run/user/<uid>/podman/podman.sock, read by the SPIRE docker attestor.
      '';
    };

    subIdStart = mkOption {
      type = types.int;
      default = 100000;
      description = "First subordinate uid/gid of user flashpods (65536 of them) for rootless Podman's user namespaces.";
    };

    network = {
      interface = mkOption {
        type = types.str;
        default = "wg0";
        description = "The WireGuard interface the laptop comes in on.";
      };
      serverAddress = mkOption {
        type = types.str;
        default = "10.0.0.1";
        description = "The host's address on the tunnel; the API and rsync listen only here.";
      };
      laptopAddress = mkOption {
        type = types.str;
        default = "10.0.0.2";
        description = "The laptop's (the only peer's) tunnel address.";
      };
      prefixLength = mkOption {
        type = types.int;
        default = 24;
        description = "Prefix length of the tunnel subnet.";
      };
      apiPort = mkOption {
        type = types.port;
        default = 8080;
        description = "TCP port of the Flashpods API.";
      };
      rsyncPort = mkOption {
        type = types.port;
        default = 873;
        description = "TCP port of the rsync daemon.";
      };
      wireguardPort = mkOption {
        type = types.port;
        default = 51820;
        description = "UDP port WireGuard listens on; the only port open to the internet besides SSH.";
      };
    };

    wireguard = {
      laptopPublicKey = mkOption {
        type = types.str;
        example = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
        description = "WireGuard public key of the laptop (`wg pubkey < privatekey` on the laptop). No default: every deployment has its own.";
      };
      privateKeyFile = mkOption {
        type = types.str;
        default = "/etc/flashpods/wireguard/private.key";
        description = "The server's WireGuard private key; never in the Nix store. Generated on first boot if missing.";
      };
      generatePrivateKey = mkOption {
        type = types.bool;
        default = true;
        description = "Generate privateKeyFile on first start if it does not exist (print the public key with `wg show wg0 public-key`).";
      };
    };

    capacity = {
      cpus = mkOption {
        type = types.nullOr types.int;
        default = null;
        description = "CPUs Flashpods may hand to jobs (FLASHPODS_CAPACITY_CPUS); null: every CPU of the machine.";
      };
      memoryGb = mkOption {
        type = types.nullOr types.int;
        default = null;
        description = "GiB of memory Flashpods may hand to jobs (FLASHPODS_CAPACITY_MEMORY_GB); null: the machine's memory less 2 GiB.";
      };
    };

    logLevel = mkOption {
      type = types.enum [ "debug" "info" "warn" "error" ];
      default = "info";
      description = "FLASHPODS_LOG_LEVEL of both units.";
    };

    extraEnvironment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { FLASHPODS_UPLOADS_TOTAL_BYTES = "21474836480"; };
      description = "More FLASHPODS_* settings (names from actors/contract/config.ts) for both units.";
    };

    images = mkOption {
      type = types.listOf types.str;
      default = [ "rust:latest" "node:20" "python:3.12" "ubuntu:22.04" "alpine:latest" ];
      description = "Images pre-pulled into the rootless Podman storage of user flashpods (shared/spec/containers.md).";
    };

    prePullImages = mkOption {
      type = types.bool;
      default = true;
      description = "Pull `images` at boot and weekly (a job naming a missing image pulls it while starting).";
    };

    rsync = {
      maxConnections = mkOption {
        type = types.int;
        default = 10;
        description = "rsyncd `max connections`.";
      };
      timeout = mkOption {
        type = types.int;
        default = 300;
        description = "rsyncd `timeout` in seconds.";
      };
    };

    spire = {
      package = mkOption {
        type = types.package;
        default = pkgs.spire;
        defaultText = lib.literalExpression "pkgs.spire";
        description = "SPIRE (outputs `server` and `agent`). The contract was checked against 1.15; see shared/notes/spire.md on the Docker API version.";
      };
      trustDomain = mkOption {
        type = types.str;
        default = "flashpods.local";
        description = "SPIFFE trust domain.";
      };
      serverPort = mkOption {
        type = types.port;
        default = 8081;
        description = "Port of the SPIRE server on 127.0.0.1.";
      };
      caTtl = mkOption {
        type = types.str;
        default = "24h";
        description = "SPIRE server `ca_ttl`.";
      };
      x509SvidTtl = mkOption {
        type = types.str;
        default = "1h";
        description = "SPIRE server `default_x509_svid_ttl`.";
      };
      jwtSvidTtl = mkOption {
        type = types.str;
        default = "5m";
        description = "SPIRE server `default_jwt_svid_ttl`.";
      };
      containerIdCgroupMatchers = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = [ "/user.slice/user-<uid>.slice/user@<uid>.service/user.slice/libpod-<id>.scope/container" ];
        description = ''
          null (default): the docker attestor's own container locator, which recognises Podman's
          `libpod-<id>.scope` cgroups and, from the `/user-<uid>.slice/` in them, dials the rootless
          socket template. A list: the legacy `container_id_cgroup_matchers` instead (derive them
          from `cat /proc/<pid>/cgroup` of a job container on the host); the two cannot be combined.
        '';
      };
      dockerApiVersion = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "1.41";
        description = "Pin the Docker API version the docker attestor speaks to Podman (`docker_version`); null negotiates.";
      };
      allowUnauthenticatedVerifiers = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Let callers without an identity fetch JWT bundles (public keys only). The token service,
          a host process, needs the trust bundle to verify JWT-SVIDs; registering it by uid would
          also match rootless job containers (same host uid), so the bundle is made public instead.
        '';
      };
    };
  };
}
