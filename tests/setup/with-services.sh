#!/usr/bin/env bash
# Runs a command (the test suite) with one moto server shared by every test, and stops it
# afterwards whatever happens. Tests find it through LIFEBOAT_TEST_MOTO_URL; a test run
# without this wrapper starts a moto server per test instead, which works but is slower.
set -euo pipefail
dir="$(mktemp -d -t lifeboat-services-XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
moto_server -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
moto_pid=$!
cleanup() { kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$moto_pid" 2>/dev/null || { echo "moto's server exited:"; cat "$dir/moto.log"; exit 1; }
  sleep 0.1
done
export LIFEBOAT_TEST_MOTO_URL="http://127.0.0.1:$port"
"$@"
