{
  description = "Flashpods host: NixOS configuration and modules (shared/spec/host.md)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
    in
    {
      nixosModules = {
        default = import ./modules/default.nix;
        options = import ./modules/options.nix;
        configuration = import ./modules/configuration.nix;
        wireguard = import ./modules/wireguard.nix;
        firewall = import ./modules/firewall.nix;
        podman = import ./modules/podman.nix;
        rsyncd = import ./modules/rsyncd.nix;
        spire = import ./modules/spire.nix;
        flashpods-api = import ./modules/flashpods-api.nix;
        token-service = import ./modules/token-service.nix;
      };

      # `nixos-rebuild switch --flake ./nix#flashpods` on the host. Deploy-specific values live
      # in hosts/flashpods/ (site.nix: keys and capacity; hardware-configuration.nix).
      nixosConfigurations.flashpods = nixpkgs.lib.nixosSystem {
        modules = [
          { nixpkgs.hostPlatform = system; }
          self.nixosModules.default
          ./hosts/flashpods
        ];
      };

      packages.${system}.default = nixpkgs.legacyPackages.${system}.callPackage ./package.nix { };
    };
}
