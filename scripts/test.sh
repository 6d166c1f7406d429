#!/usr/bin/env bash
# The whole test suite: format, lints, unit and property tests, and the end-to-end tests against a
# real control plane built from the pinned upstream modules. This is what CI runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*" >&2; }

# Debian packages the tests drive for real (COMMAND:PACKAGE); installed when missing, never skipped.
debian_packages() {
  local missing=() pair
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }
}

step "Debian packages driven by the tests: zsh, fish (completion), man-db (man pages), prometheus (server and promtool), podman and runc (the exporter's image)"
debian_packages zsh:zsh fish:fish man:man-db promtool:prometheus prometheus:prometheus podman:podman runc:runc

step "control plane binaries: Kubernetes 1.37, 1.34 and 1.33 (built once each, cached outside the repo)"
bash scripts/build-controlplane.sh >/dev/null
bash scripts/build-controlplane.sh 1.34 >/dev/null
bash scripts/build-controlplane.sh 1.33 >/dev/null
step "krew (built once, cached beside them)"
bash scripts/build-krew.sh >/dev/null

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test (unit, property and end-to-end)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# More property-test cases than the default 256; the fuzz-style parsers get the most from it.
export PROPTEST_CASES=${PROPTEST_CASES:-2048}
status=0
cargo test --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# An end-to-end test must never be skipped quietly: an ignored test is a failure here.
if grep -Eq '^test result: .* [1-9][0-9]* ignored' "$log"; then
  echo "error: some tests were ignored; every test must run" >&2
  status=1
fi
if [ "$status" -eq 0 ]; then
  step "mutation testing of the core's lines changed since MUTANTS.json was written"
  bash scripts/mutants.sh --changed || status=$?
fi
if [ "$status" -ne 0 ]; then
  # Control-plane logs of failed runs stay under target/tmp/controlplane for inspection.
  for f in target/tmp/controlplane/*/logs/*.log; do
    [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -n 20 "$f" >&2; }
  done
fi
exit "$status"
