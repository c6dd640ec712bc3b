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

# As root, nothing; otherwise passwordless sudo, when there is one. Empty output and status 1: neither.
as_root_prefix() {
  if [ "$(id -u)" = 0 ]; then return 0; fi
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then echo sudo; return 0; fi
  return 1
}

# Installs the Debian packages named that are not installed yet (Debian and Ubuntu, as root or with passwordless
# sudo). Anywhere else it says exactly what to install, and fails.
ensure_packages() {
  local missing=() pkg
  if command -v dpkg-query >/dev/null; then
    for pkg in "$@"; do
      dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
  fi
  case "$(uname -s)" in
    Darwin) echo "unsupported: macOS (Docker Desktop, Finch, colima). The base image is built with debootstrap and the" >&2
            echo "             engine must be Linux: run webstack on a Debian/Ubuntu machine or VM." >&2
            return 1 ;;
  esac
  if ! command -v apt-get >/dev/null; then
    echo "missing: webstack's set-up knows Debian and Ubuntu. Here, install by hand: a Docker engine (running)," >&2
    echo "         debootstrap with Debian's archive keyring, iptables, python3 with venv, curl; then run this again." >&2
    return 1
  fi
  local sudo
  if ! sudo=$(as_root_prefix); then
    echo "missing: ${missing[*]}. Install them (needs root): sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  step "installing Debian packages: ${missing[*]}"
  # No package starts a service of its own here (nginx on port 80, a PostgreSQL cluster on 5432, sshd): the tests
  # start what they need themselves, and the engine is started by ensure_dockerd. policy-rc.d is the Debian way
  # to say so; one that exists already is left alone.
  local guard="" status=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    guard=1
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod 0755 /usr/sbin/policy-rc.d
  fi
  $sudo apt-get update -qq || status=$?
  [ "$status" -ne 0 ] || $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || status=$?
  [ -z "$guard" ] || $sudo rm -f /usr/sbin/policy-rc.d
  return "$status"
}

docker_answers() { docker info >/dev/null 2>&1; }

# Starts the engine: through the service manager where one runs (systemd, or a SysV init script), else dockerd
# itself in the background (containers and CI machines have no service manager).
ensure_dockerd() {
  docker_answers && return 0
  command -v dockerd >/dev/null || { echo "missing: dockerd (the Docker engine): apt-get install docker.io" >&2; return 1; }
  local sudo
  if ! sudo=$(as_root_prefix); then
    echo "missing: a running Docker engine, and root to start it. Ask an administrator to start it" >&2
    echo "         (sudo systemctl start docker, or sudo dockerd &), and to add you to the docker group." >&2
    return 1
  fi
  if [ -d /run/systemd/system ]; then
    step "starting the Docker engine (systemctl start docker)"
    $sudo systemctl start docker
  else
    step "starting dockerd (no service manager runs here; log: /var/log/dockerd.log)"
    $sudo sh -c 'nohup dockerd > /var/log/dockerd.log 2>&1 &'
  fi
  for _ in $(seq 60); do docker_answers && return 0; sleep 1; done
  if $sudo docker info >/dev/null 2>&1; then
    echo "missing: permission to use the Docker engine. sudo usermod -aG docker $USER, then log in again." >&2
  else
    echo "dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
  fi
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
