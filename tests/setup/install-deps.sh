#!/usr/bin/env bash
# Installs what the test suite and the sandbox need, from this repository's own lists:
# Debian packages (PostgreSQL, Redis, etcd, protoc, python3-venv), Python packages
# (moto's server; checkov in its own virtualenv under .lifeboat/tools) and cargo-nextest.
# Idempotent: does nothing that is already in place.
#
#   install-deps.sh            everything `make test` needs
#   install-deps.sh --sandbox  only what the sandbox and drills need (`make demo`):
#                              PostgreSQL, Redis, moto's server, and protoc for the build
set -euo pipefail
only_sandbox=false
[ "${1:-}" = "--sandbox" ] && only_sandbox=true
here="$(cd "$(dirname "$0")" && pwd)"

python="${PYTHON:-python3}"
repo="$(cd "$here/../.." && pwd)"

missing=()
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The etcd-client crate compiles etcd's protos at build time, so every build needs protoc
# and the well-known types it imports (descriptor.proto, a mere recommendation of protoc).
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
# The coordination tests (src/coord) run a real 3-member etcd cluster on loopback.
$only_sandbox || command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
# checkov gets its own virtualenv (below); Debian's python3 makes one only with python3-venv.
$only_sandbox || "$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start system-wide services; the tests run their own on other ports.
  $sudo systemctl disable --now postgresql redis-server etcd >/dev/null 2>&1 || true
fi

if ! "$python" -c 'import moto, flask' >/dev/null 2>&1 || ! command -v moto_server >/dev/null 2>&1; then
  echo "install-deps: installing Python packages from tests/setup/requirements.txt"
  "$python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi

if $only_sandbox; then
  echo "install-deps: ok (sandbox)"
  exit 0
fi

# checkov checks terraform/ (tests/terraform.rs). It lives in its own virtualenv under
# the git-ignored .lifeboat/ because its pinned dependencies conflict with moto's. The
# copy of the requirements file inside the venv records what was installed, so editing
# the pin reinstalls and an unchanged pin does nothing.
checkov_venv="$repo/.lifeboat/tools/checkov"
checkov_req="$here/requirements-checkov.txt"
if ! [ -x "$checkov_venv/bin/checkov" ] || ! cmp -s "$checkov_req" "$checkov_venv/requirements-checkov.txt"; then
  echo "install-deps: installing checkov into $checkov_venv (takes a minute)"
  rm -rf "$checkov_venv"
  mkdir -p "$(dirname "$checkov_venv")"
  "$python" -m venv "$checkov_venv"
  "$checkov_venv/bin/pip" install --quiet --disable-pip-version-check -r "$checkov_req"
  cp "$checkov_req" "$checkov_venv/requirements-checkov.txt"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest"
  cargo install --locked --quiet cargo-nextest
fi
echo "install-deps: ok"
