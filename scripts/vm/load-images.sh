#!/bin/sh
# Runs as user flashpods inside the guest root while scripts/flashpods-vm builds the image: loads
# the build machine's test images (TAR) into flashpods' rootless storage, then gives each of
# IDENTITY_IMAGES a longer wait for the SPIRE agent (FLASHPODS_SPIRE_WAIT_SECONDS, images/lib/
# identity.sh's override for tests): spire-agent alone takes 2-6 s to start on the emulated CPU.
#   load-images.sh TAR "IDENTITY_IMAGES…" SPIRE_WAIT_SECONDS
set -eu
p() { podman --events-backend file --cgroup-manager cgroupfs "$@"; }
p load -q -i "$1" >&2
for image in $2; do
  c=$(p create -q "$image")
  p commit -q --change "ENV=FLASHPODS_SPIRE_WAIT_SECONDS=$3" "$c" "$image" >/dev/null
  p rm -f "$c" >/dev/null
done
