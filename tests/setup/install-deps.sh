#!/usr/bin/env bash
# Installs what the test suite and the sandbox need, from this repository's own lists:
# Debian packages (PostgreSQL, Redis), Python packages (moto's server, checkov) and
# cargo-nextest. Idempotent: does nothing that is already in place.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

apt_packages=(postgresql redis-server)
missing=()
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
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
  $sudo systemctl disable --now postgresql redis-server >/dev/null 2>&1 || true
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import moto, flask' >/dev/null 2>&1 || ! command -v moto_server >/dev/null 2>&1; then
  echo "install-deps: installing Python packages from tests/setup/requirements.txt"
  "$python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest"
  cargo install --locked --quiet cargo-nextest
fi
echo "install-deps: ok"
