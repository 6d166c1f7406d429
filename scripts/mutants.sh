#!/usr/bin/env bash
# Mutation testing of the pure core with cargo-mutants (crates.io), against the unit and property
# tests only (`-- --lib`): each mutant is a small change to src/audit/ that a test should notice.
# Writes MUTANTS.md: caught, missed, timed out and unviable mutants per file, and each one missed.
#
#   scripts/mutants.sh                      every file of src/audit/ (about an hour on 2 cores)
#   scripts/mutants.sh src/audit/retire.rs  one file or a few (15 s a mutant after a 2-3 min build)
#   MUTANTS_ARGS="--re grace_end" scripts/mutants.sh src/audit/retire.rs   only some mutants
#
# Each run updates its mutants' outcomes in MUTANTS.json, and MUTANTS.md is written from it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --version 27.1.0 --locked
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(src/audit/*.rs)
args=()
for f in "${files[@]}"; do args+=(--file "$f"); done
out=target/mutants
rm -rf "$out"
# Exit 2 means mutants survived: the report says which.
# shellcheck disable=SC2086 # MUTANTS_ARGS is a list of words
cargo mutants "${args[@]}" ${MUTANTS_ARGS:-} --output "$out" -- --lib || [ $? -eq 2 ]
python3 scripts/mutants-report.py "$out/mutants.out/outcomes.json" MUTANTS.md
