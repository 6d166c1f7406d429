#!/usr/bin/env bash
# Mutation testing of the pure core with cargo-mutants (crates.io), against the unit and property
# tests only (`-- --lib`): each mutant is a small change to the code that a test should notice.
#
#   scripts/mutants.sh                      src/audit/ and src/settings.rs (585 mutants, about 80 min)
#   scripts/mutants.sh src/audit/retire.rs  one file or a few (8 s a mutant after a 1-2 min build)
#   MUTANTS_ARGS="--re grace_end" scripts/mutants.sh src/audit/retire.rs   only some mutants
#   scripts/mutants.sh --changed            only the mutants on lines of those files changed since
#                                           MUTANTS.json was last committed; fails if one is missed
#                                           (what CI runs, so the score cannot fall silently)
#
# A run updates its mutants' outcomes in MUTANTS.json (a file run whole replaces all of its own)
# and writes MUTANTS.md from it. Mutants that are equivalent (no test can tell them apart) are excluded, each with its reason,
# in .cargo/mutants.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
core=(src/audit src/settings.rs)
install() {
  command -v cargo-mutants >/dev/null || cargo install cargo-mutants --version 27.1.0 --locked
}

if [ "${1:-}" = --changed ]; then
  base=$(git log -1 --format=%H -- MUTANTS.json)
  diff=target/mutants-changed.diff
  mkdir -p target
  git diff "$base" -- "${core[@]}" >"$diff"
  if [ ! -s "$diff" ]; then
    echo "mutants: the core is as MUTANTS.json last measured it (${base:0:7}); nothing to test"
    exit 0
  fi
  install
  echo "mutants: testing the lines of the core changed since ${base:0:7}"
  # In CI the clone is throwaway, so the mutants are built in it, reusing its compiled tests.
  where=(); [ -z "${CI:-}" ] || where=(--in-place)
  status=0
  cargo mutants --in-diff "$diff" "${where[@]}" --output target/mutants-changed -- --lib || status=$?
  # 3: a mutant made the tests hang, which a test run would notice.
  [ "$status" -ne 3 ] || status=0
  [ "$status" -ne 2 ] || echo "error: a mutant on a changed line was missed: kill it with a test, or exclude it as equivalent in .cargo/mutants.toml" >&2
  exit "$status"
fi

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(src/audit/*.rs src/settings.rs)
args=()
for f in "${files[@]}"; do args+=(--file "$f"); done
install
out=target/mutants
rm -rf "$out"
# Exit 2 means mutants survived, 3 that some made the tests hang: the report says which.
# shellcheck disable=SC2086 # MUTANTS_ARGS is a list of words
cargo mutants "${args[@]}" ${MUTANTS_ARGS:-} --profile mutants --output "$out" -- --lib || [ $? -le 3 ]
whole=("${files[@]}"); [ -z "${MUTANTS_ARGS:-}" ] || whole=()
python3 scripts/mutants-report.py "$out/mutants.out/outcomes.json" MUTANTS.md "${whole[@]}"
