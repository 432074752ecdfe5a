# Every Flashpods host module; `nixosModules.default` of the flake. Enable with
# `services.flashpods.enable = true;` and set `services.flashpods.wireguard.laptopPublicKey`.
{
  imports = [
    ./options.nix
    ./configuration.nix
    ./wireguard.nix
    ./firewall.nix
    ./podman.nix
    ./rsyncd.nix
    ./spire.nix
    ./flashpods-api.nix
    ./token-service.nix
  ];
}
