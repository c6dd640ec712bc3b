#!/usr/bin/env bash
# Builds pulumi-resource-docker: the upstream kreuzwerker/terraform-provider-docker
# (SDKv2 + plugin-framework parts, muxed) bridged with pulumi-terraform-bridge v3,
# with tokens/property names of the pulumi-docker Python SDK (VERSION below).
# Usage: build.sh [OUT_DIR]   (default ~/.cache/pulumi-toolchain/bin)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${1:-${OUT_DIR:-$HOME/.cache/pulumi-toolchain/bin}}"
source "$(dirname "${BASH_SOURCE[0]}")/../versions.env"
VERSION=$DOCKER_VERSION   # the pulumi-docker Python SDK version this plugin matches
TAGS="no_compose" # docker_compose (framework resource) is not in the Python SDK; keeps docker/compose out

export GOPATH="${GOPATH:-$HOME/.cache/pulumi-toolchain/gopath}"
export GOCACHE="${GOCACHE:-$HOME/.cache/pulumi-toolchain/gocache}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export CGO_ENABLED="${CGO_ENABLED:-0}"

WORK="${DOCKER_PROVIDER_WORK:-$HOME/.cache/pulumi-toolchain/build/docker}"
GEN_DIR="$HERE/cmd/pulumi-resource-docker"
LDFLAGS="-s -w -X github.com/terraform-providers/terraform-provider-docker/shim/provider.Version=$VERSION"
mkdir -p "$OUT_DIR" "$WORK"
cd "$HERE"

# Serialise concurrent runs (they share $WORK and the generated schema files).
exec 9>"$WORK/.lock"
flock 9

echo "==> building pulumi-tfgen-docker (go $(go env GOVERSION))"
nice -n 10 go build -buildvcs=false -tags "$TAGS" -ldflags "$LDFLAGS" -o "$WORK/pulumi-tfgen-docker" ./cmd/pulumi-tfgen-docker

# The schema depends only on the tfgen binary (our ProviderInfo + upstream schema + bridge).
STAMP="$(sha256sum "$WORK/pulumi-tfgen-docker" | cut -d' ' -f1) $VERSION"
if [[ -f "$GEN_DIR/schema.json" && -f "$GEN_DIR/bridge-metadata.json" && -f "$WORK/schema.stamp" \
      && "$(cat "$WORK/schema.stamp")" == "$STAMP" ]]; then
  echo "==> schema.json up to date"
else
  echo "==> generating schema.json + bridge-metadata.json with tfgen"
  TMP="$(mktemp -d "$WORK/gen.XXXXXX")"
  trap 'rm -rf "$TMP"' EXIT
  # tfgen warns about every resource's docs (no upstream git checkout); keep the log, show the summary.
  if ! (cd "$TMP" && "$WORK/pulumi-tfgen-docker" schema --out "$TMP/out" >"$TMP/tfgen.log" 2>&1); then
    cat "$TMP/tfgen.log" >&2; exit 1
  fi
  grep -E "total resources|total functions" "$TMP/tfgen.log" | sed 's/^[[:space:]]*/    /' || true
  for f in schema.json bridge-metadata.json; do
    cmp -s "$TMP/out/$f" "$GEN_DIR/$f" || cp "$TMP/out/$f" "$GEN_DIR/$f"
  done
  echo "$STAMP" > "$WORK/schema.stamp"
fi

echo "==> building pulumi-resource-docker $VERSION -> $OUT_DIR"
nice -n 10 go build -buildvcs=false -tags "$TAGS" -ldflags "$LDFLAGS" -o "$OUT_DIR/pulumi-resource-docker" ./cmd/pulumi-resource-docker
echo "==> done: $("$OUT_DIR/pulumi-resource-docker" --version 2>/dev/null || echo "$VERSION") $OUT_DIR/pulumi-resource-docker"
