# The host firewall: nftables, UDP 51820 open to the internet, and the trust boundary of
# shared/spec/host.md — kept in ONE file, nix/firewall/flashpods.nft, included verbatim here and
# loaded with `nft -f` by test/e2e/firewall.test.ts in network namespaces (what is tested is
# what is deployed).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flashpods;
  net = cfg.network;
  rulesetFile = ../firewall/flashpods.nft;
  ruleset = builtins.readFile rulesetFile;
  has = needle: lib.hasInfix needle ruleset;
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    networking.nftables.enable = true;
    networking.nftables.ruleset = ruleset;

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
    ];
  };
}
