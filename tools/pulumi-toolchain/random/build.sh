#!/usr/bin/env bash
# Builds pulumi-resource-random (upstream terraform-provider-random bridged with
# pulumi-terraform-bridge/v3 pkg/pf) into OUT_DIR.
#   1. builds our tfgen main (cmd/pulumi-tfgen-random) into the work dir,
#   2. regenerates cmd/pulumi-resource-random/{schema.json,bridge-metadata.json} with it, only when
#      the tfgen binary (= all Go inputs) or the version changed,
#   3. builds the provider main, which embeds them, with the version set by ldflags.
# Usage: build.sh [OUT_DIR]   (default ~/.cache/pulumi-toolchain/bin)
set -euo pipefail

# The pulumi-random Python SDK version this plugin is compatible with (pin pulumi-random==4.21.0).
source "$(dirname "${BASH_SOURCE[0]}")/../versions.env"
PLUGIN_VERSION=$RANDOM_VERSION

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${1:-${OUT_DIR:-$HOME/.cache/pulumi-toolchain/bin}}"
WORK_DIR="${RANDOM_WORK_DIR:-$HOME/.cache/pulumi-toolchain/work/random}"

export GOPATH="${GOPATH:-$HOME/.cache/pulumi-toolchain/gopath}"
export GOCACHE="${GOCACHE:-$HOME/.cache/pulumi-toolchain/gocache}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export CGO_ENABLED="${CGO_ENABLED:-0}"

LDFLAGS="-X webstack.local/toolchain/random/provider.Version=${PLUGIN_VERSION}"
GEN_DIR="$HERE/cmd/pulumi-resource-random"
STAMP="$GEN_DIR/.schema-inputs.sha256"
TFGEN="$WORK_DIR/bin/pulumi-tfgen-random"

mkdir -p "$OUT_DIR" "$WORK_DIR/bin"
cd "$HERE"

echo "==> building pulumi-tfgen-random ${PLUGIN_VERSION} (first build compiles the bridge: several minutes)"
nice -n 10 go build -ldflags "$LDFLAGS" -o "$TFGEN" ./cmd/pulumi-tfgen-random

want="$(sha256sum "$TFGEN" | cut -d' ' -f1) ${PLUGIN_VERSION}"
if [[ -f "$STAMP" && -f "$GEN_DIR/schema.json" && -f "$GEN_DIR/bridge-metadata.json" \
      && "$(cat "$STAMP")" == "$want" ]]; then
  echo "==> schema.json is up to date"
else
  echo "==> generating schema.json with tfgen (pf)"
  tmp="$(mktemp -d "$WORK_DIR/gen.XXXXXX")"
  # Run from the module root: tfgen looks the upstream docs up with `go mod download` in ./provider.
  # PULUMI_CONVERT=0: convert the docs' HCL examples in-process (no `pulumi convert` / converter plugin).
  # Examples that reference other providers (aws_*) are dropped with a warning; that is expected.
  if ! PULUMI_CONVERT=0 PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true \
       PULUMI_HOME="$WORK_DIR/tfgen-pulumi-home" PULUMI_SKIP_UPDATE_CHECK=true \
       "$TFGEN" schema --out "$tmp" >"$WORK_DIR/tfgen.log" 2>&1; then
    tail -40 "$WORK_DIR/tfgen.log" >&2
    echo "tfgen failed; full log: $WORK_DIR/tfgen.log" >&2
    exit 1
  fi
  for f in schema.json bridge-metadata.json; do
    cmp -s "$tmp/$f" "$GEN_DIR/$f" || cp "$tmp/$f" "$GEN_DIR/$f"
  done
  rm -rf "$tmp"
  echo "$want" >"$STAMP"
fi

echo "==> building pulumi-resource-random ${PLUGIN_VERSION} into $OUT_DIR"
nice -n 10 go build -ldflags "$LDFLAGS" -o "$OUT_DIR/pulumi-resource-random" ./cmd/pulumi-resource-random
echo "==> done: $("$OUT_DIR/pulumi-resource-random" -version) $OUT_DIR/pulumi-resource-random"
