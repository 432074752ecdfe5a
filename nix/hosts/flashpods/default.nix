# The Flashpods host of this deployment: hardware, SSH, and the deploy-specific values in
# site.nix. Everything Flashpods-specific comes from the modules and their options.
{ config, lib, pkgs, ... }:

{
  imports = [
    ./hardware-configuration.nix
    ./site.nix
  ];

  services.flashpods.enable = true;

  networking.hostName = lib.mkDefault "flashpods";
  # WireGuard's 51820/udp is the only port open to the internet (shared/spec/host.md): SSH is
  # reachable through the tunnel (ssh root@10.0.0.1). Install over SSH before this is switched
  # on, and keep the provider's console as the way in when the tunnel is down.
  services.openssh = {
    enable = true;
    openFirewall = false;
    settings.PasswordAuthentication = false;
    settings.PermitRootLogin = "prohibit-password";
  };
  networking.firewall.interfaces.wg0.allowedTCPPorts = [ 22 ];
  time.timeZone = "UTC";
  nix.settings.experimental-features = [ "nix-command" "flakes" ];

  system.stateVersion = "25.05";
}
