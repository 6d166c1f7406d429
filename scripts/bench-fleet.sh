#!/usr/bin/env bash
# Many clusters: `status --contexts c1,c2,c3` against three real control planes, beside each
# context alone and the sum of the three, timed by `examples/measure.rs` (2 warm-up runs, median). c2 and c3 are
# reached through a small TCP proxy that delays every chunk by BENCH_DELAY_MS (default 50) each
# way, as remote clusters are: on loopback alone the three would only compete for two cores. Writes the
# "Many clusters" section of BENCHMARKS.md (between the fleet markers, which scripts/bench.sh keeps).
#
#   scripts/bench-fleet.sh
#
# Environment: BENCH_RUNS (10), BENCH_OUT (BENCHMARKS.md), CONTROLPLANE_BIN.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$repo/BENCHMARKS.md}
RUNS=${BENCH_RUNS:-10}
DELAY_MS=${BENCH_DELAY_MS:-50}
log() { echo "bench-fleet: $*" >&2; }

(cd "$repo" && cargo build --release --locked --bin kubectl-servicecidr --example measure >&2)
plugin=${CARGO_TARGET_DIR:-$repo/target}/release/kubectl-servicecidr
meter=${CARGO_TARGET_DIR:-$repo/target}/release/examples/measure
# shellcheck source=scripts/bench-sections.sh
. "$repo/scripts/bench-sections.sh"
bin=${CONTROLPLANE_BIN:-$(bash "$repo/scripts/build-controlplane.sh" | tail -n 1)}
export CONTROLPLANE_BIN=$bin
kubectl=$bin/kubectl

work=$(mktemp -d)
proxy_pids=()
cleanup() {
  for p in "${proxy_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "$work"/cp*; do [ -d "$d" ] && bash "$repo/scripts/controlplane.sh" stop "$d" --clean || true; done
  rm -rf "$work"
}
trap cleanup EXIT

merged=$work/fleet.kubeconfig
for i in 1 2 3; do
  kc=$(bash "$repo/scripts/controlplane.sh" start "$work/cp$i" | tail -n 1)
  view() { "$kubectl" --kubeconfig "$kc" config view --raw -o jsonpath="$1"; }
  server=$(view '{.clusters[0].cluster.server}')
  if [ "$i" != 1 ]; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 - "$port" "${server##*:}" "$DELAY_MS" <<'PY' &
import asyncio, sys
listen, upstream, delay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
async def pipe(r, w):
    while data := await r.read(65536):
        await asyncio.sleep(delay)
        w.write(data)
        await w.drain()
    w.close()
async def serve(cr, cw):
    ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
    await asyncio.gather(pipe(cr, uw), pipe(ur, cw), return_exceptions=True)
async def main():
    async with await asyncio.start_server(serve, "127.0.0.1", listen) as s:
        await s.serve_forever()
asyncio.run(main())
PY
    proxy_pids+=($!)
    server=https://127.0.0.1:$port
  fi
  ca=$(view '{.clusters[0].cluster.certificate-authority}')
  token=$(view '{.users[?(@.name=="admin")].user.token}')
  "$kubectl" --kubeconfig "$merged" config set-cluster "c$i" --server="$server" --certificate-authority="$ca" >/dev/null
  "$kubectl" --kubeconfig "$merged" config set-credentials "c$i" --token="$token" >/dev/null
  "$kubectl" --kubeconfig "$merged" config set-context "c$i" --cluster="c$i" --user="c$i" >/dev/null
done
"$kubectl" --kubeconfig "$merged" config use-context c1 >/dev/null

export KUBECONFIG=$merged
# median ARGS...: median wall time (ms) of `status ARGS`.
median() { log "status $*"; "$meter" --runs "$RUNS" --warmup 2 -- "$plugin" status "$@" | cut -f1; }
ms() { awk -v x="$1" 'BEGIN { printf "%.0f ms", x }'; }
c1=$(median --context c1) c2=$(median --context c2) c3=$(median --context c3)
fleet=$(median --contexts c1,c2,c3) serial=$(median --contexts c1,c2,c3 --concurrency 1)
sum=$(awk -v a="$c1" -v b="$c2" -v c="$c3" 'BEGIN { print a + b + c }')
slowest=$(awk -v a="$c1" -v b="$c2" -v c="$c3" 'BEGIN { m = a; if (b > m) m = b; if (c > m) m = c; print m }')

text=$(cat <<EOF
Measured $(date -u +%Y-%m-%d) by \`scripts/bench-fleet.sh\`: three real control planes
($("$plugin" --version), $($kubectl version -o json 2>/dev/null | jq -r '.serverVersion.gitVersion'),
$(nproc) cores, median of $RUNS runs), \`status\` on each; c2 and c3 are behind a proxy adding
$DELAY_MS ms each way to every chunk, as remote clusters would be.

| run | median |
|---|---:|
| \`--context c1\` | $(ms "$c1") |
| \`--context c2\` | $(ms "$c2") |
| \`--context c3\` | $(ms "$c3") |
| sum of the three | $(ms "$sum") |
| slowest of the three | $(ms "$slowest") |
| \`--contexts c1,c2,c3\` | $(ms "$fleet") |
| \`--contexts c1,c2,c3 --concurrency 1\` | $(ms "$serial") |

The three contexts read concurrently take $(awk -v f="$fleet" -v s="$slowest" 'BEGIN { printf "%.2f×", f / s }') the
slowest one alone and $(awk -v f="$fleet" -v s="$sum" 'BEGIN { printf "%.2f×", f / s }') their sum; read one after another
(\`--concurrency 1\`) they take $(awk -v f="$serial" -v s="$sum" 'BEGIN { printf "%.2f×", f / s }') the sum.
EOF
)

write_section fleet "Many clusters" "$text"
log "wrote the Many clusters section of $OUT"
