#!/usr/bin/env bash
# Builds the base image every webstack Dockerfile starts FROM, without any image registry:
# debootstrap a minimal Debian bookworm from the Debian mirror apt already uses, then `docker import` it.
# For air-gapped hosts and for machines where `docker pull` cannot reach a registry.
#
#   containers/base/build-base-image.sh [--force] [IMAGE]      (default debian:bookworm-slim)
#
# Signatures are checked (debootstrap --keyring --force-check-gpg, and apt inside the image uses the same
# keyring), the image's apt sources include bookworm-updates and bookworm-security, and the packages are
# upgraded from them before the import. The image is labelled with its build date (webstack.base.built); an
# image older than WEBSTACK_BASE_MAX_AGE_DAYS (default 7) is rebuilt, so security fixes reach every image
# built FROM it (Docker's layer cache depends on the parent image: a new base rebuilds the apt layers).
# `pulumi up` runs it at the first update of each ISO week for a local target and for target.baseImageSource
# operator (templates/host/base-image.sh.j2), with WEBSTACK_BASE_MAX_AGE_DAYS set from webstack:baseImageMaxAgeDays.
# Building needs root (debootstrap, chroot); checking a young image does not.
#
# Environment: DEBIAN_MIRROR (default: the mirror of this machine's apt sources), DEBIAN_SECURITY_MIRROR
# (default: the security mirror of this machine's sources, else http://deb.debian.org/debian-security),
# DEBIAN_KEYRING (default /usr/share/keyrings/debian-archive-keyring.gpg), WEBSTACK_BASE_MAX_AGE_DAYS,
# DOCKER_HOST as for docker.
set -euo pipefail

force=no
if [ "${1:-}" = --force ]; then force=yes; shift; fi
image="${1:-debian:bookworm-slim}"
max_age_days="${WEBSTACK_BASE_MAX_AGE_DAYS:-7}"
keyring="${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"

if [ "$force" = no ] && docker image inspect "$image" >/dev/null 2>&1; then
  built=$(docker image inspect -f '{{ index .Config.Labels "webstack.base.built" }}' "$image" 2>/dev/null || true)
  if [ -n "$built" ] && [ "$built" != "<no value>" ]; then
    age_days=$(( ($(date -u +%s) - $(date -u -d "$built" +%s)) / 86400 ))
    if [ "$age_days" -lt "$max_age_days" ]; then
      echo "base image $image built $built ($age_days day(s) ago; rebuilt after $max_age_days); nothing to do"
      exit 0
    fi
    echo "base image $image was built $built, $age_days day(s) ago: rebuilding it for security fixes"
  else
    echo "base image $image has no build date (not built by this script, or by an older one): rebuilding it"
  fi
fi

for tool in debootstrap docker tar; do
  command -v "$tool" >/dev/null || { echo "error: '$tool' is missing; install it (apt-get install debootstrap docker.io)" >&2; exit 1; }
done
[ -s "$keyring" ] || { echo "error: the Debian archive keyring $keyring is missing; install debian-archive-keyring (or set DEBIAN_KEYRING)" >&2; exit 1; }
# debootstrap and chroot need root; without it debootstrap fails deep in its log. `pulumi up` runs this script
# for a local target and for target.baseImageSource operator (components/base_image.py): say how to go on.
if [ "$(id -u)" != 0 ]; then
  echo "error: building the base image $image needs root (debootstrap and chroot). Run it once as root:" >&2
  echo "  sudo $0 $image" >&2
  echo "then run the update again (a base image younger than $max_age_days day(s) is not rebuilt)" >&2
  exit 1
fi

host_uri() {   # the first URIs: of this machine's deb822 sources whose line matches $1
  [ -f /etc/apt/sources.list.d/debian.sources ] || return 0
  awk -v want="$1" '/^URIs:/ && $2 ~ want {print $2; exit}' /etc/apt/sources.list.d/debian.sources
}
mirror="${DEBIAN_MIRROR:-$(host_uri '/debian/?$')}"
mirror="${mirror:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY_MIRROR:-$(host_uri 'debian-security')}"
security="${security:-http://deb.debian.org/debian-security}"

rootfs=$(mktemp -d /tmp/webstack-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "[1/4] debootstrap bookworm (minbase) from $mirror, signatures checked against $keyring"
debootstrap --variant=minbase --keyring "$keyring" --force-check-gpg bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
  || { tail -20 "$rootfs.log" >&2; echo "error: debootstrap failed (log: $rootfs.log)" >&2; exit 1; }

echo "[2/4] apt sources: bookworm, bookworm-updates ($mirror) and bookworm-security ($security)"
rm -f "$rootfs/etc/apt/sources.list"
cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

echo "[3/4] security and stable updates (apt-get upgrade in the new root)"
DEBIAN_FRONTEND=noninteractive chroot "$rootfs" sh -c 'apt-get -q update && apt-get -q -y upgrade' >> "$rootfs.log" 2>&1 \
  || { tail -20 "$rootfs.log" >&2; echo "error: apt-get upgrade in the new root failed (log: $rootfs.log); is $security reachable? Set DEBIAN_SECURITY_MIRROR to a reachable security mirror" >&2; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*

built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "[4/4] docker import as $image (webstack.base.built=$built)"
tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' --change "LABEL webstack.base.built=$built" \
  - "$image" >/dev/null
rm -f "$rootfs.log"
echo "base image $image built: $(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec)"
