#!/usr/bin/env bash
# The scale curve: `status` at each N of BENCH_SCALE (default 1000 10000 100000 300000), each on a
# fresh control plane seeded with `examples/seed.rs N --mode unmanaged-ipaddresses`: the one seed
# mode that stays put at any N (no allocator label, so the repair loop leaves it alone) and fast to
# seed (direct creates). Beside it: `status --chunk-size 500` and the keep-alive floor (JSON pages of
# 500, `examples/floor.rs`), and the server's CPU per run, so the client's cost shows apart from the
# server's. Writes the "scale curve" section of BENCHMARKS.md (between the scale markers, which
# scripts/bench.sh keeps).
#
#   scripts/bench-scale.sh
#
# Environment: BENCH_SCALE, BENCH_OUT (BENCHMARKS.md), CONTROLPLANE_BIN. Runs per N: 10, fewer past
# 30,000 (300,000 / N, at least 3).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$repo/BENCHMARKS.md}
read -ra sizes <<<"${BENCH_SCALE:-1000 10000 100000 300000}"
log() { echo "bench-scale: $*" >&2; }
command -v jq >/dev/null || { log "jq is needed"; exit 1; }

(cd "$repo" && cargo build --release --locked --quiet --bin kubectl-servicecidr \
  --example seed --example floor --example measure >&2)
target=${CARGO_TARGET_DIR:-$repo/target}/release
plugin=$target/kubectl-servicecidr
bin=${CONTROLPLANE_BIN:-$(bash "$repo/scripts/build-controlplane.sh" | tail -n 1)}
export CONTROLPLANE_BIN=$bin
# shellcheck source=scripts/bench-sections.sh
. "$repo/scripts/bench-sections.sh"

cp=""
cleanup() { [ -z "$cp" ] || bash "$repo/scripts/controlplane.sh" stop "$cp" --clean >/dev/null 2>&1 || true; }
trap cleanup EXIT

ms() { awk -v x="$1" 'BEGIN { if (x >= 1000) printf "%.2f s", x / 1000; else if (x >= 100) printf "%.0f ms", x; else printf "%.1f ms", x }'; }
rows=""
for n in "${sizes[@]}"; do
  runs=$((300000 / n))
  [ "$runs" -le 10 ] || runs=10
  [ "$runs" -ge 3 ] || runs=3
  cp=$(mktemp -d "${TMPDIR:-/tmp}/servicecidr-scale.XXXXXX")
  export KUBECONFIG
  KUBECONFIG=$(bash "$repo/scripts/controlplane.sh" start "$cp" | tail -n 1)
  log "N=$n: seeding"
  t0=$(date +%s%N)
  "$target/examples/seed" "$n" --mode unmanaged-ipaddresses >/dev/null
  seed_s=$(awk -v d=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.0f", d / 1e9 }')
  count=$("$plugin" status -o json | jq '[.totals[].allocated] | add')
  pids="$(cat "$cp/pids/kube-apiserver"),$(cat "$cp/pids/etcd")"
  log "N=$n: measuring ($runs runs each)"
  line=$("$target/examples/measure" --runs "$runs" --warmup 1 --server "$pids" -- "$plugin" status)
  read -r med min max _ _ user sys server rss <<<"$line"
  small=$("$target/examples/measure" --runs "$runs" --warmup 1 -- "$plugin" status --chunk-size 500 | cut -f1)
  floor=$("$target/examples/floor" "$KUBECONFIG" 500 "$runs" /apis/networking.k8s.io/v1/servicecidrs \
    /apis/networking.k8s.io/v1/ipaddresses | cut -f1 | sort -n |
    awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  rows+="| $n | $count | $(ms "$med") | $(ms "$min") – $(ms "$max") | $(ms "$user") + $(ms "$sys") | $(ms "$server") | $rss MiB | $(ms "$small") | $(ms "$floor") | $(awk -v a="$med" -v b="$floor" 'BEGIN { printf "%.2f×", a / b }') | $runs | $seed_s s |"$'\n'
  bash "$repo/scripts/controlplane.sh" stop "$cp" --clean >/dev/null 2>&1
  cp=""
done

text=$(cat <<EOF
Measured $(date -u +%Y-%m-%d) by \`scripts/bench-scale.sh\` ($("$plugin" --version), kube-apiserver
$("$bin/kube-apiserver" --version | awk '{ print $2 }'), $(nproc) cores): for each N a fresh control plane seeded with
\`examples/seed.rs N --mode unmanaged-ipaddresses\` (20 ranges; the IPAddresses are created
directly, so only \`status\` reads them as a real cluster's: \`orphans\` would find every one
unmanaged). Medians of *runs* runs after a warm-up run. *Client CPU* is user + system time of the
plugin, *server CPU* kube-apiserver + etcd time per run (idle background not subtracted), both from
the same runs as the wall time; the floor reads the same lists as JSON pages of 500 on warm
keep-alive connections, never parsed (\`examples/floor.rs\`).

| N | IPs in ranges | \`status\` | min – max | client CPU | server CPU | peak RSS | \`--chunk-size 500\` | keep-alive floor | ÷ floor | runs | seeding |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows%$'\n'}
EOF
)
write_section scale "The scale curve" "$text"
log "wrote the scale curve section of $OUT"
