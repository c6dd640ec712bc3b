# Shared by .ci/run, .ci/test and .ci/deploy-dev. Sourced, not executed.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/venv"      # Pulumi.yaml's runtime.options.virtualenv: the CLI uses the same one

step() { printf '\n==> %s\n' "$*"; }

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ] || [ "$ROOT/requirements.txt" -nt "$VENV/.installed" ]; then
    step "Python virtualenv ($VENV) from requirements.txt"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet -r "$ROOT/requirements.txt"
    touch "$VENV/.installed"
  fi
}

docker_answers() { docker info >/dev/null 2>&1; }

ensure_dockerd() {
  docker_answers && return 0
  command -v dockerd >/dev/null || return 1
  step "starting dockerd (no Docker engine answered)"
  nohup dockerd > /var/log/dockerd.log 2>&1 &
  for _ in $(seq 60); do docker_answers && return 0; sleep 1; done
  echo "dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
  return 1
}

# The script itself decides: it builds a missing base image and rebuilds one older than
# WEBSTACK_BASE_MAX_AGE_DAYS (default 7, by its webstack.base.built label), so security fixes arrive.
ensure_base_image() {
  step "offline base image (debootstrap + docker import; rebuilt when older than ${WEBSTACK_BASE_MAX_AGE_DAYS:-7} days)"
  bash "$ROOT/containers/base/build-base-image.sh" debian:bookworm-slim
}

TOOLCHAIN_BIN="${PULUMI_TOOLCHAIN_BIN:-$HOME/.cache/pulumi-toolchain/bin}"

# The Pulumi engine: a `pulumi` already on PATH, else the pinned toolchain built from Go modules (cached under
# ~/.cache/pulumi-toolchain; seconds when nothing changed), else a message saying exactly what to install.
ensure_toolchain() {
  if command -v pulumi >/dev/null && [ "${WEBSTACK_BUILD_TOOLCHAIN:-}" != 1 ]; then
    return 0
  fi
  if command -v go >/dev/null; then
    step "Pulumi toolchain (tools/pulumi-toolchain/build.sh)"
    OUT_DIR="$TOOLCHAIN_BIN" bash "$ROOT/tools/pulumi-toolchain/build.sh"
    export PATH="$TOOLCHAIN_BIN:$PATH"
    # The providers come from the plugin cache at the exact versions the SDKs ask for, not from PATH.
    export PULUMI_IGNORE_AMBIENT_PLUGINS=true
    return 0
  fi
  echo "missing: the Pulumi CLI, and Go to build it. Either install Pulumi (curl -fsSL https://get.pulumi.com | sh)" >&2
  echo "         or install Go 1.25.11+ (https://go.dev/dl) and run this again: it builds the pinned toolchain." >&2
  return 1
}
