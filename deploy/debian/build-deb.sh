#!/usr/bin/env bash
# Builds lifeboat's Debian package with cargo-deb from a binary already built:
#
#   deploy/debian/build-deb.sh BINARY OUT_DIR
#
# `make package` passes the release binary; the test suite (tests/package.rs) passes
# the debug one it has just built, since a release build of the AWS SDK does not fit
# CI's time. The binary generates its own man pages and completions (from its clap
# definitions); everything is staged as OUT_DIR/stage/release/, which cargo-deb's
# `target/release/` asset prefix points at, so the package is the same either way.
# Prints the path of the .deb.
set -euo pipefail
bin="$(realpath "$1")"
out="$(mkdir -p "$2" && realpath "$2")"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
stage="$out/stage"

command -v cargo-deb >/dev/null 2>&1 || {
  echo "build-deb: cargo-deb is missing; run tests/setup/install-deps.sh (cargo install --locked cargo-deb)" >&2
  exit 1
}
rm -rf "$stage"
mkdir -p "$stage/release/package/man" "$stage/release/package/completions"
# A hard link when the stage is on the binary's file system: the debug binary is large.
ln -f "$bin" "$stage/release/lifeboat" 2>/dev/null || cp "$bin" "$stage/release/lifeboat"
"$bin" man --out-dir "$stage/release/package/man"
# Compressed as Debian policy asks (cargo-deb leaves files from target/ as they are).
gzip -9n "$stage/release/package/man"/*.1
"$bin" completions bash >"$stage/release/package/completions/lifeboat.bash"
"$bin" completions zsh >"$stage/release/package/completions/_lifeboat"
"$bin" completions fish >"$stage/release/package/completions/lifeboat.fish"
# The example policies name the installed schema, so an editor finds it in a copy.
mkdir -p "$stage/release/package/examples"
for f in "$repo"/policies/examples/*.toml; do
  sed '1s|^#:schema .*|#:schema /usr/share/lifeboat/policy.schema.json|' "$f" \
    >"$stage/release/package/examples/$(basename "$f")"
done

cd "$repo"
# --strip: the package never carries debug info (cargo-deb strips a copy, not $bin).
CARGO_TARGET_DIR="$stage" cargo deb --no-build --strip --fast --quiet --output "$out" >&2
ls -t "$out"/lifeboat_*.deb | head -n 1
