#!/bin/sh
# flashpods-vm (test machinery): copies the tsx compile cache made for this checkout on the build
# machine (scripts/vm/warm-tsx.mjs) into the TMPDIR of each Flashpods unit, before they start.
set -eu
src="$(cat /etc/flashpods-vm/package-root)/.vm-tsx-cache"
[ -d "$src" ] || exit 0
for unit in flashpods-api flashpods-token-service; do
  tmp=$(systemctl show -p Environment --value "$unit" | tr ' ' '\n' | sed -n 's/^TMPDIR=//p')
  user=$(systemctl show -p User --value "$unit")
  [ -n "$tmp" ] && [ -n "$user" ] || continue
  mkdir -p "$tmp/tsx-$(id -u "$user")"
  cp -r "$src/." "$tmp/tsx-$(id -u "$user")/"
  chown -R "$user:$(id -gn "$user")" "$tmp"
done
