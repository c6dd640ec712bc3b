#!/usr/bin/env bash
# Builds our own pulumi-resource-command (compatible with the pulumi-command Python SDK,
# pin pulumi-command==1.2.1) into OUT_DIR. The schema is inferred at run time from the
# Go structs (pulumi-go-provider infer), so there is no generated file to refresh.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../versions.env"
VERSION=$COMMAND_VERSION
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${1:-${OUT_DIR:-$HOME/.cache/pulumi-toolchain/bin}}"

export GOPATH="${GOPATH:-$HOME/.cache/pulumi-toolchain/gopath}"
export GOCACHE="${GOCACHE:-$HOME/.cache/pulumi-toolchain/gocache}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export CGO_ENABLED="${CGO_ENABLED:-0}"

command -v go >/dev/null || { echo "==> error: go not found on PATH" >&2; exit 1; }
mkdir -p "$OUT_DIR"
echo "==> building pulumi-resource-command v$VERSION ($(go version | awk '{print $3}')) -> $OUT_DIR"
cd "$HERE"
nice -n 10 go build -trimpath \
	-ldflags "-s -w -X main.Version=$VERSION" \
	-o "$OUT_DIR/pulumi-resource-command" .
echo "==> done: $OUT_DIR/pulumi-resource-command"
