#!/usr/bin/env bash
# Installs what the test suite and the sandbox need, from this repository's own lists:
# Debian packages (PostgreSQL, Redis, etcd, protoc, python3-venv, ca-certificates; for
# the packaging checks promtool from `prometheus`, systemd-analyze, man and groff),
# Python packages (moto's server, taplo; checkov in its own virtualenv under
# .lifeboat/tools), cargo-nextest, cargo-deny and cargo-deb. Idempotent: does nothing
# that is already in place.
#
#   install-deps.sh            everything `make test` needs
#   install-deps.sh --sandbox  only what the sandbox and drills need (`make demo`):
#                              PostgreSQL, Redis, moto's server, and protoc for the build
#   install-deps.sh --package  only what `make package` needs: cargo-deb
set -euo pipefail
only_sandbox=false
[ "${1:-}" = "--sandbox" ] && only_sandbox=true
here="$(cd "$(dirname "$0")" && pwd)"

# Pinned so that a new release changes nothing until the pin moves.
cargo_deb_version="3.8.0"
taplo_version="0.9.3"
install_cargo_deb() {
  if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $cargo_deb_version"; then
    echo "install-deps: installing cargo-deb $cargo_deb_version (compiles for about 3 minutes)"
    cargo install --locked --quiet --version "$cargo_deb_version" cargo-deb
  fi
}
if [ "${1:-}" = "--package" ]; then
  # The build itself needs protoc (the etcd-client crate compiles etcd's protos).
  if ! command -v protoc >/dev/null 2>&1 || [ ! -f /usr/include/google/protobuf/descriptor.proto ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends protobuf-compiler libprotobuf-dev >/dev/null
  fi
  install_cargo_deb
  echo "install-deps: ok (package)"
  exit 0
fi

python="${PYTHON:-python3}"
repo="$(cd "$here/../.." && pwd)"

missing=()
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The system's CA roots: verify-full connections without a ca_file trust them, and
# `validate` warns about policies that would need them on a machine without any.
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
# The etcd-client crate compiles etcd's protos at build time, so every build needs protoc
# and the well-known types it imports (descriptor.proto, a mere recommendation of protoc).
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
# The coordination tests (src/coord) run a real 3-member etcd cluster on loopback.
$only_sandbox || command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
# checkov gets its own virtualenv (below); Debian's python3 makes one only with python3-venv.
$only_sandbox || "$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if ! $only_sandbox; then
  # tests/deploy.rs: promtool checks and unit-tests the alert rules and the dashboard's
  # queries. Debian ships it in the Prometheus server's package (which it does not start).
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  # tests/package.rs: systemd-analyze judges the unit file (no running systemd needed);
  # man resolves its Documentation=; groff reads the man pages.
  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
  command -v man >/dev/null 2>&1 || missing+=(man-db)
  command -v groff >/dev/null 2>&1 || missing+=(groff-base)
  command -v objdump >/dev/null 2>&1 || missing+=(binutils)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start system-wide services; the tests run their own on other ports
  # (and need no Prometheus server, only its promtool).
  for unit in postgresql redis-server prometheus etcd; do
    $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi

if ! "$python" -c 'import moto, flask, jsonschema, openapi_spec_validator' >/dev/null 2>&1 || ! command -v moto_server >/dev/null 2>&1; then
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

# `make test` checks the dependency graph against deny.toml (licences, bans, sources).
if ! cargo deny --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-deny (a few minutes, once)"
  cargo install --locked --quiet cargo-deny
fi

# tests/schema.rs: taplo (the engine of Even Better TOML and taplo's language server)
# validates the policies against their schema. PyPI's wheel is the prebuilt binary: a
# few seconds, where `cargo install taplo-cli` compiles for minutes.
if ! taplo --version 2>/dev/null | grep -qx "taplo $taplo_version"; then
  echo "install-deps: installing taplo $taplo_version"
  "$python" -m pip install --quiet --disable-pip-version-check "taplo==$taplo_version"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi

# tests/package.rs builds the Debian package.
install_cargo_deb
echo "install-deps: ok"
