#!/usr/bin/env bash
# Build the Debian base images the Molecule scenarios and the demo run on, one per recipe in
# scripts/base-image.d/ (bookworm, trixie). No registry is reachable from lab CI, so each image is
# made with debootstrap and `docker import`. An image is rebuilt only when its recipe changes: the
# hash of this script plus the recipe file is stored as an image label.
# Usage: scripts/base-image.sh [SUITE...]   (default: every recipe)
set -euo pipefail
cd "$(dirname "$0")/.."
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
recipes=()
if (($#)); then for s in "$@"; do recipes+=("scripts/base-image.d/$s"); done
else recipes=(scripts/base-image.d/*); fi

cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT

build() {
  local recipe_file=$1 SUITE IMAGE INCLUDE recipe have rootfs
  [[ -f $recipe_file ]] || { echo "base-image: no recipe $recipe_file" >&2; return 1; }
  # shellcheck source=/dev/null
  source "$recipe_file"
  recipe=$(cat scripts/base-image.sh "$recipe_file" | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{ index .Config.Labels "gpulab.recipe" }}' "$IMAGE" 2>/dev/null || true)
  if [[ $have == "$recipe" ]]; then echo "base-image: $IMAGE up to date ($recipe)"; return 0; fi

  rootfs=$(mktemp -d /var/tmp/gpulab-rootfs-"$SUITE".XXXXXX)
  cleanup+=("$rootfs" "$rootfs.log")
  echo "base-image: debootstrap $SUITE into $rootfs (about a minute or two)"
  local t0=$SECONDS
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
    || { tail -30 "$rootfs.log" >&2; return 1; }
  # Inside the test hosts nothing should start on its own at install time except what systemd runs.
  chroot "$rootfs" systemctl disable docker.service docker.socket containerd.service docker-registry.service >/dev/null 2>&1 || true
  chroot "$rootfs" systemctl mask systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket getty@tty1.service >/dev/null 2>&1 || true
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' \
    -c "LABEL gpulab.recipe=$recipe" -c "LABEL gpulab.suite=$SUITE" - "$IMAGE" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
  echo "base-image: built $IMAGE ($recipe) in $((SECONDS - t0)) s"
}

for r in "${recipes[@]}"; do build "$r"; done
