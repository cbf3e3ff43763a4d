# lifeboat: `make demo` shows it working on the local sandbox; `make test` runs the
# whole suite. Both install what they need first (tests/setup/install-deps.sh).
SHELL := /bin/bash
CARGO ?= cargo
LIFEBOAT := ./target/debug/lifeboat

.PHONY: demo test deps deps-sandbox build lint fmt package fuzz schemas

## Install the system and Python packages the tests and the sandbox use.
deps:
	tests/setup/install-deps.sh

## Only what the sandbox needs: PostgreSQL, Redis, moto's server.
deps-sandbox:
	tests/setup/install-deps.sh --sandbox

build:
	$(CARGO) build --locked

## The main job on the local sandbox: validate the policies, show the failover plan,
## then a region-outage drill end to end (fresh two-region sandbox, the real daemon,
## a write load, primary database and API killed, automatic failover, verified
## failback, sandbox taken down). Prints the figures and where the report is.
demo: deps-sandbox build
	$(LIFEBOAT) validate policies/
	$(LIFEBOAT) plan failover --policy policies/sandbox.toml
	$(LIFEBOAT) drill policies/drills/region-outage.toml --policy policies/sandbox.toml

## Format check, the dependency policy (deny.toml: licences, banned crates, sources;
## offline, so not `advisories`), then every test (unit, integration, end to end). The
## failpoints feature compiles in the crash points the crash tests (tests/crash.rs) kill
## the process at; without it those tests are skipped.
test: deps
	$(CARGO) fmt --check
	$(CARGO) deny --locked check bans licenses sources
	tests/setup/with-services.sh $(CARGO) nextest run --locked --no-fail-fast --features failpoints

## The Debian package, from a release build: target/debian/lifeboat_VERSION-1_ARCH.deb
## (binary, man pages, completions, the lifeboat@.service template unit, the policy
## schema, alert rules and dashboard). `make test` builds the same package from the
## debug binary (tests/package.rs).
package:
	tests/setup/install-deps.sh --package
	$(CARGO) build --locked --release
	deploy/debian/build-deb.sh "$${CARGO_TARGET_DIR:-target}/release/lifeboat" "$${CARGO_TARGET_DIR:-target}/debian"

## Regenerate every generated contract from the types: deploy/policy.schema.json,
## deploy/drill.schema.json, deploy/schemas/*.schema.json (the --json outputs) and
## deploy/openapi.json (the HTTP API). tests/schema.rs fails when one is stale.
schemas:
	UPDATE_EXPECT=1 $(CARGO) test --locked --test schema -- what_lifeboat_schema_prints

## Fuzz the policy loader and the API's requests (fuzz/, cargo-fuzz on nightly) for
## FUZZ_SECONDS each, then shrink each corpus back (cmin). Not part of `make test`, which
## replays the saved corpus and every crash on stable (tests/fuzz_replay.rs). A crash
## lands in fuzz/artifacts/TARGET/: commit it (and a policy crash also as a case in
## tests/policies/bad/) with its fix. Without sanitizers: the crate forbids unsafe code,
## and what the fuzzers look for is panics, overflows (debug assertions are on) and the
## invariants lifeboat::fuzzing checks.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= policy api_request
FUZZ_FLAGS := --sanitizer none --debug-assertions
fuzz:
	@command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz (and rustup toolchain install nightly)"; exit 1; }
	set -e; for t in $(FUZZ_TARGETS); do \
	  $(CARGO) +nightly fuzz run $(FUZZ_FLAGS) $$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -print_final_stats=1; \
	  $(CARGO) +nightly fuzz cmin $(FUZZ_FLAGS) $$t; \
	done

lint:
	$(CARGO) clippy --locked --all-targets --features failpoints -- -D warnings

fmt:
	$(CARGO) fmt
