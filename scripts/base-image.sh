#!/usr/bin/env bash
# Build the Debian 12 base image every Molecule scenario and the demo run on. No registry is
# reachable from lab CI, so the image is made with debootstrap and `docker import`. It is rebuilt
# only when this recipe changes: the recipe's hash is stored as an image label.
set -euo pipefail
IMAGE=${GPULAB_BASE_IMAGE:-gpulab/debian:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
INCLUDE=python3,python3-apt,python3-venv,python3-pip,systemd,systemd-sysv,dbus,sudo,ca-certificates,curl,iproute2,procps,gnupg,zstd,kmod,docker.io,docker-registry,apt-utils,initramfs-tools-core,less
recipe=$( { cat "$0"; echo "$INCLUDE"; } | sha256sum | cut -c1-16)

have=$(docker image inspect -f '{{ index .Config.Labels "gpulab.recipe" }}' "$IMAGE" 2>/dev/null || true)
if [[ $have == "$recipe" ]]; then echo "base-image: $IMAGE up to date ($recipe)"; exit 0; fi

rootfs=$(mktemp -d /var/tmp/gpulab-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "base-image: debootstrap bookworm into $rootfs (about a minute or two)"
debootstrap --variant=minbase --include="$INCLUDE" bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
  || { tail -30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# Inside the test hosts nothing should start on its own at install time except what systemd runs.
chroot "$rootfs" systemctl disable docker.service docker.socket containerd.service docker-registry.service >/dev/null 2>&1 || true
chroot "$rootfs" systemctl mask systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket getty@tty1.service >/dev/null 2>&1 || true
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' \
  -c "LABEL gpulab.recipe=$recipe" - "$IMAGE" >/dev/null
echo "base-image: built $IMAGE ($recipe)"
