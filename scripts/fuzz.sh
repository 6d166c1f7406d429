#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer + AddressSanitizer) of what the plugin parses:
# IPAddress names and CIDRs, objects from the server, the command line. CI runs each target
# briefly; run longer by hand, e.g.  FUZZ_SECONDS=3600 bash scripts/fuzz.sh objects
# Needs the nightly toolchain (rustup) and cargo-fuzz, installed here on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${FUZZ_SECONDS:-20}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(names objects command_line)

rustup run nightly rustc --version >/dev/null 2>&1 \
  || { echo "fuzz: the nightly toolchain is missing: rustup toolchain install nightly" >&2; exit 1; }
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

# The corpus grows in target/ (not committed); fuzz/seeds/ holds the starting points, hand-written
# or captured from a real kube-apiserver.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  corpus=target/fuzz-corpus/$t
  mkdir -p "$corpus"
  echo "fuzz: $t for ${seconds}s" >&2
  status=0
  cargo +nightly fuzz run --fuzz-dir fuzz "$t" "$corpus" "fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz: $t failed (a crashing input, if any, is in fuzz/artifacts/$t)" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" | sed "s/^/fuzz: $t /" >&2
done
