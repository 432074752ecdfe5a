# The host firewall: nftables, UDP 51820 open to the internet, and the trust boundary of
# shared/spec/host.md — kept in ONE file, nix/firewall/flashpods.nft, included verbatim here and
# loaded with `nft -f` by test/e2e/firewall.test.ts in network namespaces (what is tested is
# what is deployed): the laptop alone reaches the API and rsync, and job traffic (rootless: the
# sockets of user flashpods; rootful: forwarded from Podman bridges) opens no connection to the
# tunnel subnet or to link-local / cloud-metadata addresses.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flashpods;
  net = cfg.network;
  rulesetFile = ../firewall/flashpods.nft;
  ruleset = builtins.readFile rulesetFile;
  has = needle: lib.hasInfix needle ruleset;

  # The user whose sockets carry rootless jobs' traffic (slirp4netns runs as the Podman user); the
  # API shares it and needs nothing in the closed ranges (see the ruleset's header).
  jobUser = "flashpods";

  # The tunnel subnet as the ruleset's job_denied_v4 set names it: serverAddress/prefixLength
  # with the host bits cleared (10.0.0.1/24 → 10.0.0.0/24).
  tunnelSubnet =
    let
      octets = map builtins.fromJSON (lib.splitString "." net.serverAddress);
      masked = i:
        let bits = net.prefixLength - 8 * i; in
        if bits >= 8 then builtins.elemAt octets i
        else if bits <= 0 then 0
        else builtins.bitAnd (builtins.elemAt octets i) (builtins.elemAt [ 0 128 192 224 240 248 252 254 ] bits);
    in
    "${lib.concatMapStringsSep "." (i: toString (masked i)) [ 0 1 2 3 ]}/${toString net.prefixLength}";
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    networking.nftables.enable = true;
    networking.nftables.ruleset = ruleset;
    # NixOS checks the ruleset at build time in a sandbox without user flashpods (`nft` resolves
    # `meta skuid` names when loading); `nobody` exists there. Only the check's copy is edited.
    networking.nftables.preCheckRuleset = ''sed -i 's/meta skuid "${jobUser}"/meta skuid "nobody"/' ruleset.conf'';

    networking.firewall = {
      enable = true;
      allowedUDPPorts = [ net.wireguardPort ];
      # NixOS's own table (inet nixos-fw, policy drop) must let the laptop's ports in on the
      # tunnel; table inet flashpods then drops them for everyone but the laptop's address.
      interfaces.${net.interface}.allowedTCPPorts = [ net.apiPort net.rsyncPort ];
    };

    # The ruleset is a tested literal: changing an address or port option without the file
    # (and its test) would silently open or close the wrong thing.
    assertions = [
      {
        assertion = has ''iifname "${net.interface}" tcp dport ${toString net.apiPort} ip saddr ${net.laptopAddress} accept''
          && has ''iifname "${net.interface}" tcp dport ${toString net.rsyncPort} ip saddr ${net.laptopAddress} accept''
          && has "tcp dport { ${toString net.apiPort}, ${toString net.rsyncPort} } drop";
        message = "nix/firewall/flashpods.nft does not match services.flashpods.network (interface, laptopAddress, apiPort, rsyncPort): change the ruleset file together with the options and run test/e2e/firewall.test.ts.";
      }
      {
        assertion = has "elements = { ${tunnelSubnet}, 169.254.0.0/16 }"
          && has ''meta skuid "${jobUser}" ct state new jump job_egress'';
        message = "nix/firewall/flashpods.nft does not close the tunnel subnet ${tunnelSubnet} (services.flashpods.network serverAddress/prefixLength) and link-local addresses to the new connections of user ${jobUser}: change the ruleset file together with the options and run test/e2e/firewall.test.ts.";
      }
    ];
  };
}
