# WireGuard: wg0 with the server at 10.0.0.1/24 listening on 51820/udp, one peer — the laptop,
# 10.0.0.2/32. Keys are deploy-specific options; the private key never enters the Nix store.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.flashpods;
  net = cfg.network;
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    networking.wireguard.enable = true;
    networking.wireguard.interfaces.${net.interface} = {
      ips = [ "${net.serverAddress}/${toString net.prefixLength}" ];
      listenPort = net.wireguardPort;
      privateKeyFile = cfg.wireguard.privateKeyFile;
      generatePrivateKeyFile = cfg.wireguard.generatePrivateKey;
      peers = [
        {
          publicKey = cfg.wireguard.laptopPublicKey;
          allowedIPs = [ "${net.laptopAddress}/32" ];
        }
      ];
    };

    assertions = [
      {
        assertion = builtins.match "[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=" cfg.wireguard.laptopPublicKey != null;
        message = "services.flashpods.wireguard.laptopPublicKey is not a WireGuard public key (44 characters of base64; `wg pubkey` on the laptop prints it): set it in nix/hosts/flashpods/site.nix.";
      }
    ];
  };
}
