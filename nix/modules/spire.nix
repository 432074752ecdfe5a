# SPIRE server and agent (shared/spec/identity.md): trust domain flashpods.local, the node
# attested with a join token aliased to spiffe://flashpods.local/host, job containers attested by
# the docker workload attestor against flashpods' rootless Podman (labels → worker / agent).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flashpods;
  scfg = cfg.spire;
  paths = import ./paths.nix;
  spire = scfg.package;
  td = scfg.trustDomain;
  hostId = "spiffe://${td}/host";
  joinTokenFile = "/run/spire/agent/join-token";
  bootstrapBundle = "${paths.spireAgentData}/bootstrap-bundle.pem";
  serverCli = "${spire.server}/bin/spire-server";
  S = paths.spireServerSocket;

  hclList = xs: "[ ${lib.concatMapStringsSep ", " (x: ''"${x}"'') xs} ]";

  # Rootless Podman: a job's cgroup path carries /user-<uid>.slice/, so the agent dials this
  # template with the container owner's uid; podman.nix links flashpods' Podman API there.
  dockerPluginData = [ ''podman_socket_path_template = "unix:///run/user/%d/podman/podman.sock"'' ]
    ++ lib.optional (scfg.dockerApiVersion != null) ''docker_version = "${scfg.dockerApiVersion}"''
    ++ lib.optionals (scfg.containerIdCgroupMatchers != null) [
      "use_new_container_locator = false"
      "container_id_cgroup_matchers = ${hclList scfg.containerIdCgroupMatchers}"
    ];

  serverConf = ''
    server {
      bind_address = "127.0.0.1"
      bind_port = "${toString scfg.serverPort}"
      socket_path = "${S}"
      trust_domain = "${td}"
      data_dir = "${paths.spireServerData}"
      log_level = "INFO"
      ca_ttl = "${scfg.caTtl}"
      default_x509_svid_ttl = "${scfg.x509SvidTtl}"
      default_jwt_svid_ttl = "${scfg.jwtSvidTtl}"
    }

    plugins {
      DataStore "sql" {
        plugin_data {
          database_type = "sqlite3"
          connection_string = "${paths.spireServerData}/datastore.sqlite3"
        }
      }

      NodeAttestor "join_token" {
        plugin_data {}
      }

      KeyManager "disk" {
        plugin_data {
          keys_path = "${paths.spireServerData}/keys.json"
        }
      }
    }

    health_checks {
      listener_enabled = true
      bind_address = "127.0.0.1"
      bind_port = "8082"
      live_path = "/live"
      ready_path = "/ready"
    }
  '';

  agentConf = ''
    agent {
      data_dir = "${paths.spireAgentData}"
      log_level = "INFO"
      server_address = "127.0.0.1"
      server_port = "${toString scfg.serverPort}"
      socket_path = "${paths.spireSocket}"
      trust_bundle_path = "${bootstrapBundle}"
      trust_domain = "${td}"
      allow_unauthenticated_verifiers = ${lib.boolToString scfg.allowUnauthenticatedVerifiers}
    }

    plugins {
      NodeAttestor "join_token" {
        plugin_data {}
      }

      KeyManager "disk" {
        plugin_data {
          directory = "${paths.spireAgentData}"
        }
      }

      WorkloadAttestor "docker" {
        plugin_data {
    ${lib.concatMapStrings (line: "      ${line}\n") dockerPluginData}    }
      }
    }

    health_checks {
      listener_enabled = true
      bind_address = "127.0.0.1"
      bind_port = "8083"
      live_path = "/live"
      ready_path = "/ready"
    }
  '';

  waitForServer = ''
    for _ in $(seq 1 60); do
      ${serverCli} healthcheck -socketPath ${S} >/dev/null 2>&1 && break
      sleep 1
    done
    ${serverCli} healthcheck -socketPath ${S}
  '';

  entries = [
    { id = "spiffe://${td}/worker"; selector = "docker:label:flashpods-job-type:worker"; }
    { id = "spiffe://${td}/agent"; selector = "docker:label:flashpods-job-type:agent"; }
  ];

  hardening = {
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    PrivateTmp = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectControlGroups = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
  };
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    environment.etc."spire/server.conf".text = serverConf;
    environment.etc."spire/agent.conf".text = agentConf;
    environment.systemPackages = [ spire ];

    systemd.tmpfiles.rules = [
      "d /var/lib/spire 0755 root root -"
      "d ${paths.spireServerData} 0700 root root -"
      "d ${paths.spireAgentData} 0700 root root -"
      "d /run/spire 0755 root root -"
      "d ${paths.spireSocketDir} 0755 root root -"
      "d /run/spire/server 0700 root root -"
      "d /run/spire/agent 0700 root root -"
    ];

    systemd.services.spire-server = {
      description = "SPIRE server (trust domain ${td})";
      wantedBy = [ "multi-user.target" ];
      wants = [ "flashpods-podman-socket.service" ];
      after = [ "network.target" "flashpods-podman-socket.service" "systemd-tmpfiles-setup.service" ];
      serviceConfig = hardening // {
        ExecStart = "${serverCli} run -config /etc/spire/server.conf";
        Restart = "on-failure";
        RestartSec = 2;
        ProtectHome = true;
        ReadWritePaths = [ paths.spireServerData "/run/spire/server" ];
      };
    };

    # Before every agent start: trust bundle from the server's local admin socket (no insecure
    # bootstrap), and a fresh single-use join token only when the agent has no valid SVID.
    systemd.services.spire-agent-bootstrap = {
      description = "SPIRE agent bootstrap (trust bundle, join token when needed)";
      requires = [ "spire-server.service" ];
      after = [ "spire-server.service" ];
      before = [ "spire-agent.service" ];
      path = [ pkgs.coreutils pkgs.gnused pkgs.jq pkgs.openssl ];
      serviceConfig = { Type = "oneshot"; UMask = "0077"; };
      script = ''
        set -eu
        ${waitForServer}
        rm -f ${joinTokenFile}
        ${serverCli} bundle show -socketPath ${S} -format pem > ${bootstrapBundle}.new
        mv ${bootstrapBundle}.new ${bootstrapBundle}

        data=${paths.spireAgentData}/agent-data.json
        if [ -s "$data" ] && jq -r '.svid[0] // empty' "$data" | base64 -d 2>/dev/null \
            | openssl x509 -noout -checkend 60 >/dev/null 2>&1; then
          echo "agent SVID still valid: no join token needed"
          exit 0
        fi
        # Join tokens cannot re-attest: an expired or missing SVID needs a new token.
        rm -f "$data" ${paths.spireAgentData}/agent_svid.der ${paths.spireAgentData}/bundle.der
        token=$(${serverCli} token generate -socketPath ${S} -spiffeID ${hostId} -ttl 600 | sed -n 's/^Token: //p')
        [ -n "$token" ] || { echo "spire-server token generate printed no token" >&2; exit 1; }
        printf '%s\n' "$token" > ${joinTokenFile}
        echo "issued a join token for ${hostId}"
      '';
    };

    # Root, with supplementary group flashpods: it reads job processes' cgroups and asks
    # flashpods' Podman API (flashpods:flashpods 0660) for their labels.
    systemd.services.spire-agent = {
      description = "SPIRE agent (Workload API on ${paths.spireSocket})";
      wantedBy = [ "multi-user.target" ];
      requires = [ "spire-server.service" "spire-agent-bootstrap.service" "flashpods-podman-socket.service" ];
      after = [ "spire-server.service" "spire-agent-bootstrap.service" "flashpods-podman-socket.service" ];
      path = [ pkgs.coreutils ];
      script = ''
        if [ -s ${joinTokenFile} ]; then
          exec ${spire.agent}/bin/spire-agent run -config /etc/spire/agent.conf -joinToken "$(cat ${joinTokenFile})"
        fi
        exec ${spire.agent}/bin/spire-agent run -config /etc/spire/agent.conf
      '';
      # Ready (for the units ordered after it) once the Workload API socket exists; 0777 as the
      # contract's table says: attestation, not file modes, decides who gets what.
      postStart = ''
        for _ in $(seq 1 60); do
          [ -S ${paths.spireSocket} ] && { chmod 0777 ${paths.spireSocket}; exit 0; }
          sleep 1
        done
        echo "no Workload API socket at ${paths.spireSocket} after 60 s (attestation failed? journalctl -u spire-agent)" >&2
        exit 1
      '';
      serviceConfig = hardening // {
        User = "root";
        SupplementaryGroups = [ "flashpods" ];
        Restart = "on-failure";
        RestartSec = 5;
        # /run/user/<uid> holds the attestor's template socket path: visible, read-only.
        ProtectHome = "read-only";
        ReadWritePaths = [ paths.spireAgentData "/run/spire" ];
      };
    };

    # The two registration entries of identity.md, created once (idempotent on every boot).
    systemd.services.spire-register-entries = {
      description = "SPIRE registration entries for Flashpods job containers";
      wantedBy = [ "multi-user.target" ];
      requires = [ "spire-server.service" ];
      after = [ "spire-server.service" "spire-agent-bootstrap.service" ];
      before = [ "flashpods-token-service.service" ];
      path = [ pkgs.coreutils pkgs.gnugrep ];
      serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
      script = ''
        set -eu
        ${waitForServer}
        register() {
          if ${serverCli} entry show -socketPath ${S} -parentID ${hostId} -spiffeID "$1" -selector "$2" | grep -q 'Entry ID'; then
            echo "entry $1 ($2) exists"
          else
            ${serverCli} entry create -socketPath ${S} -parentID ${hostId} -spiffeID "$1" -selector "$2"
          fi
        }
        ${lib.concatMapStringsSep "\n" (e: "register ${e.id} ${e.selector}") entries}
      '';
    };
  };
}
