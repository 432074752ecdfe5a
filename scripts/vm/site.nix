# Site values of the VM host of scripts/flashpods-vm — the counterpart of
# nix/hosts/flashpods/site.nix for a deployment that is a 2-CPU, 4 GiB qemu guest without a
# registry. Everything else comes from the flake's host unchanged.
{ lib, ... }:

{
  services.flashpods = {
    # The test laptop of test/vm (its private key is in test/support/vm.ts: a test-only key).
    wireguard.laptopPublicKey = lib.mkForce "JSw6fqsTuhy8tvmTUL5X2jomtorEDtk4tSOXwlzWHGA=";

    # The guest has 2 CPUs and 4 GiB: two 1-GiB jobs side by side, room for Podman and Node.
    capacity.cpus = lib.mkForce 2;
    capacity.memoryGb = lib.mkForce 2;

    # No registry is reachable: the images are copied in from the build machine.
    prePullImages = false;
    extraEnvironment.FLASHPODS_AGENT_IMAGE = "localhost/flashpods-agent:test";
    extraEnvironment.FLASHPODS_DEFAULT_IMAGE = "localhost/busybox:test";
    # qemu emulates the CPU (TCG): Node loads the actors' modules about ten times slower than on
    # the hardware, more when the build machine is busy; 30 s is too short to start there.
    extraEnvironment.FLASHPODS_ACTOR_START_TIMEOUT_SECONDS = "240";
  };
}
