#!/usr/bin/env bash
# Builds the base image every webstack Dockerfile starts FROM, without any image registry:
# debootstrap a minimal Debian bookworm from the Debian mirror apt already uses, then `docker import` it.
# For air-gapped hosts and for machines where `docker pull` cannot reach a registry.
#
#   containers/base/build-base-image.sh [IMAGE]      (default debian:bookworm-slim)
#
# Environment: DEBIAN_MIRROR (default: the mirror of this machine's apt sources), DOCKER_HOST as for docker.
set -euo pipefail

image="${1:-debian:bookworm-slim}"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image already present; nothing to do"
  exit 0
fi

for tool in debootstrap docker tar; do
  command -v "$tool" >/dev/null || { echo "error: '$tool' is missing; install it (apt-get install debootstrap docker.io)" >&2; exit 1; }
done

mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
mirror="${mirror:-http://deb.debian.org/debian}"

rootfs=$(mktemp -d /tmp/webstack-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "[1/3] debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
  || { tail -20 "$rootfs.log" >&2; echo "error: debootstrap failed (log: $rootfs.log)" >&2; exit 1; }

echo "[2/3] trimming caches"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# Containers resolve the mirror by name; keep the same mirror the host used.
printf 'deb %s bookworm main\n' "$mirror" > "$rootfs/etc/apt/sources.list"

echo "[3/3] docker import as $image"
tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
rm -f "$rootfs.log"
echo "base image $image built: $(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec)"
