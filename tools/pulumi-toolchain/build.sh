#!/usr/bin/env bash
# Builds the pinned Pulumi toolchain from Go modules (the module proxy is reachable; release binaries are not):
# the `pulumi` CLI, the Python language host, and the docker, command and random provider plugins.
#
#   bash tools/pulumi-toolchain/build.sh          # OUT_DIR (default ~/.cache/pulumi-toolchain/bin) then holds them
#
# Idempotent: Go's module and build caches live under ~/.cache/pulumi-toolchain, and a part whose inputs did not
# change is skipped, so a second run takes seconds. Each part says what it does; a part that cannot be built
# stops the script with the module and the error.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/versions.env"
CACHE="${PULUMI_TOOLCHAIN_CACHE:-$HOME/.cache/pulumi-toolchain}"
export OUT_DIR="${OUT_DIR:-$CACHE/bin}"
export GOPATH="$CACHE/gopath" GOCACHE="$CACHE/gocache" GOFLAGS=-mod=mod CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
mkdir -p "$OUT_DIR" "$CACHE"

# Two builds at once (two terminals, or deploy-dev beside CI) would write the same binaries: the second waits.
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
  echo "==> waiting for another toolchain build to finish (lock: $CACHE/.build.lock)"
  flock 9
fi

step() { printf '==> %s\n' "$*"; }

if ! command -v go >/dev/null; then
  echo "no Go toolchain: install Go 1.25.11 or newer (https://go.dev/dl), or install Pulumi itself:" >&2
  echo "  curl -fsSL https://get.pulumi.com | sh" >&2
  exit 1
fi

# A part is rebuilt only when its stamp (its files, Go's version and the pinned versions) changes.
stamp_of() { (cd "$HERE" && find "$@" -type f ! -name '*.md' ! -name schema.json ! -name bridge-metadata.json ! -name '.schema-inputs.sha256' -print0 | sort -z | xargs -0 sha256sum; go version; cat versions.env) | sha256sum | cut -c1-16; }
up_to_date() { [ -f "$OUT_DIR/.stamp-$1" ] && [ "$(cat "$OUT_DIR/.stamp-$1")" = "$2" ]; }

build_cli() {
  local stamp; stamp=$(stamp_of cli)
  if up_to_date cli "$stamp" && [ -x "$OUT_DIR/pulumi" ]; then step "pulumi v$PULUMI_VERSION: up to date"; return; fi
  step "pulumi v$PULUMI_VERSION: building github.com/pulumi/pulumi/pkg/v3/cmd/pulumi (cold: about 6 min on 2 cores)"
  (cd "$HERE/cli" && go build -trimpath -tags osusergo,grpcnotrace \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
      -o "$OUT_DIR/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  echo "$stamp" > "$OUT_DIR/.stamp-cli"
}

install_python_host() {
  # Our language host (see language-python/language_host.py), plus the two scripts the sdk/v3 module ships
  # for Python: the dynamic-resource provider and the exec shim. They are taken from the module cache.
  step "Python language host and dynamic-resource provider"
  local sdk; sdk=$(cd "$HERE/cli" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
  install -m 0755 "$HERE/language-python/pulumi-language-python" "$OUT_DIR/pulumi-language-python"
  install -m 0644 "$HERE/language-python/language_host.py" "$OUT_DIR/language_host.py"
  # RunPlugin: how the engine starts a Python policy pack (`--policy-pack`) through the language host.
  install -m 0644 "$HERE/language-python/run_plugin.py" "$OUT_DIR/run_plugin.py"
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$OUT_DIR/pulumi-resource-pulumi-python"
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$OUT_DIR/pulumi-language-python-exec"
}

build_cli
install_python_host
for provider in docker command random; do
  if [ -f "$HERE/$provider/build.sh" ]; then
    stamp=$(stamp_of "$provider")
    if up_to_date "$provider" "$stamp" && [ -x "$OUT_DIR/pulumi-resource-$provider" ]; then
      step "pulumi-resource-$provider: up to date"
    else
      bash "$HERE/$provider/build.sh"
      echo "$stamp" > "$OUT_DIR/.stamp-$provider"
    fi
  fi
done

# Into the engine's plugin cache at their exact versions: that is where `pulumi up` looks for a provider of the
# version the Python SDK asks for (plugins on PATH are taken at any version, with a warning).
for provider in docker command random; do
  binary="$OUT_DIR/pulumi-resource-$provider"
  [ -x "$binary" ] || continue
  version_var="$(echo "$provider" | tr a-z A-Z)_VERSION"
  version="${!version_var:-}"
  [ -n "$version" ] || { echo "versions.env has no $version_var" >&2; exit 1; }
  cached="${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-$provider-v$version/pulumi-resource-$provider"
  if [ -f "$cached" ] && cmp -s "$binary" "$cached"; then
    step "plugin resource $provider v$version: installed"
  else
    step "plugin resource $provider v$version: installing into the plugin cache"
    "$OUT_DIR/pulumi" plugin install resource "$provider" "$version" --file "$binary" --reinstall >/dev/null
  fi
done

step "installed in $OUT_DIR"
"$OUT_DIR/pulumi" version
"$OUT_DIR/pulumi" plugin ls
