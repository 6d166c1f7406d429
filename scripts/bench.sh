#!/usr/bin/env bash
# End-to-end benchmark of kubectl-servicecidr against a throwaway local control plane.
#
#   scripts/bench.sh [N]        (N: IPAddresses to seed, default 10000)
#
# Builds the plugin and the seed example (release), runs the criterion audit benchmarks (before the
# control plane starts, on a quiet machine), starts a control plane in a temp dir (stopped on exit),
# seeds N IPAddresses with `examples/seed.rs`, then measures against the same data:
#   status   vs `kubectl get servicecidrs,ipaddresses -o json`            vs the keep-alive floor
#   orphans  vs `kubectl get servicecidrs,ipaddresses,services -A -o json` vs the keep-alive floor
#   (`examples/floor.rs`: warm, and as a process per run)
#   client CPU and peak RSS of each, server CPU per run (kube-apiserver + etcd, idle subtracted),
#   all from the same runs of `examples/measure.rs`
#   delete --wait of an empty range, with the service-cidr controller and without it
# and a profile of `status` (perf when usable, per-page timings, the -v request log, context
# switches and syscalls).
# The numbers land in a results directory; `examples/bench_report.rs` writes BENCHMARKS.md (or
# $BENCH_OUT) from them, keeping the sections written by hand or by the other bench scripts.
#
# Environment: BENCH_RUNS (10), BENCH_WARMUP (2), BENCH_DELETE_RUNS (3),
# BENCH_OUT, BENCH_RESULTS (a directory to keep the raw results in, for examples/bench_report.rs),
# BENCH_CRITERION=0 (skip cargo bench), BENCH_PERF=0 (skip the perf profile; it needs an
# unstripped build, made once in target/profiling), CONTROLPLANE_BIN (see scripts/controlplane.sh).
set -euo pipefail

N=${1:-10000}
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -gt 0 ] || { echo "usage: $0 [N]" >&2; exit 2; }
RUNS=${BENCH_RUNS:-10}
WARMUP=${BENCH_WARMUP:-2}
DELETE_RUNS=${BENCH_DELETE_RUNS:-3}
GRACE_S=10 # the plugin's default --grace-period

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$repo/BENCHMARKS.md}
target=${CARGO_TARGET_DIR:-$repo/target}
plugin=$target/release/kubectl-servicecidr
seed=$target/release/examples/seed

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Tools

apt_install() {
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null || return 1
  log "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; }
}

command -v python3 >/dev/null || die "python3 is needed (scripts/controlplane.sh needs it too)"
perf_ok=false
if [ "${BENCH_PERF:-1}" != 0 ]; then
  command -v perf >/dev/null || apt_install linux-perf || true
  if command -v perf >/dev/null && perf record -q -o /dev/null -- true >/dev/null 2>&1; then
    perf_ok=true
  else
    log "perf is not usable here: profiling by phases only"
  fi
fi

# ---------------------------------------------------------------------------------------------
# Build

cd "$repo"
log "building (release): plugin, seed, floor, measure and bench_report examples"
cargo build --release --quiet
cargo build --release --quiet --example seed --example floor --example measure --example bench_report
floor=$target/release/examples/floor
meter=$target/release/examples/measure
report=$target/release/examples/bench_report
for b in "$plugin" "$seed" "$floor" "$meter" "$report"; do [ -x "$b" ] || die "the build did not produce $b"; done
profile_bin=""
if [ "$perf_ok" = true ]; then
  # Same code and optimisation as release, with symbols (release strips them).
  log "building an unstripped copy for perf (target/profiling; slow the first time)"
  cargo build --quiet --profile profiling --bin kubectl-servicecidr \
    --config 'profile.profiling.inherits="release"' --config 'profile.profiling.strip=false' \
    --config 'profile.profiling.debug="line-tables-only"'
  profile_bin=$target/profiling/kubectl-servicecidr
fi

criterion_dir=""
if [ "${BENCH_CRITERION:-1}" != 0 ]; then
  log "cargo bench --bench audit (quiet machine: before the control plane starts)"
  cargo bench --quiet --bench audit >"${TMPDIR:-/tmp}/bench-criterion.$$.log" 2>&1 ||
    { tail -20 "${TMPDIR:-/tmp}/bench-criterion.$$.log" >&2; die "cargo bench failed"; }
  rm -f "${TMPDIR:-/tmp}/bench-criterion.$$.log"
  criterion_dir=$target/criterion
fi

# ---------------------------------------------------------------------------------------------
# Control plane

cp=$(mktemp -d "${TMPDIR:-/tmp}/servicecidr-bench.XXXXXX")
cleanup() {
  local rc=$?
  [ -z "${BENCH_RESULTS:-}" ] || [ ! -d "$cp/results" ] || cp -r "$cp/results/." "$BENCH_RESULTS/" || true
  bash "$repo/scripts/controlplane.sh" stop "$cp" --clean >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log "starting a control plane in $cp"
bash "$repo/scripts/controlplane.sh" start "$cp" --owner $$ >/dev/null
# shellcheck disable=SC1091
. "$cp/env"
export KUBECONFIG
kubectl=$CONTROLPLANE_BIN/kubectl
kcache=$cp/kubectl-cache
res=$cp/results
mkdir -p "$res"
: >"$res/facts.tsv"
fact() { printf '%s\t%s\n' "$1" "$2" >>"$res/facts.tsv"; }

log "seeding N=$N"
seed_t0=$(date +%s%N)
"$seed" "$N" >"$res/seed.out" 2>"$res/seed.err" || { cat "$res/seed.err" >&2; die "seeding failed"; }
seed_s=$(awk -v a="$seed_t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
seed_summary=$(cat "$res/seed.out")
fact seed_summary "$seed_summary"
fact seed_s "$seed_s"
log "$seed_summary"

# A ServiceCIDR for the delete benchmark, created with the controller running (so it carries the
# finalizer and Ready=True); `nocontroller` then stops the controller.
cat >"$cp/mkrange.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
. $(printf %q "$cp/env")
bash $(printf %q "$repo/scripts/controlplane.sh") start-controller $(printf %q "$cp") 2>/dev/null
k() { $(printf %q "$kubectl") --request-timeout=10s "\$@"; }
k delete servicecidr "\$1" --ignore-not-found --wait=true >/dev/null 2>&1 || true
printf 'apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: %s}\nspec: {cidrs: [10.250.0.0/24]}\n' "\$1" | k create -f - >/dev/null
ready=false
for _ in \$(seq 300); do
  if k get servicecidr "\$1" -o jsonpath='{.metadata.finalizers} {.status.conditions[?(@.type=="Ready")].status}' |
    grep -q 'service-cidr-finalizer.* True'; then
    ready=true
    break
  fi
  sleep 0.1
done
[ "\$ready" = true ] || { echo "mkrange: \$1 got no finalizer or Ready=True within 30 s" >&2; exit 1; }
if [ "\${2:-}" = nocontroller ]; then
  bash $(printf %q "$repo/scripts/controlplane.sh") stop-controller $(printf %q "$cp") 2>/dev/null
fi
EOF
chmod +x "$cp/mkrange.sh"

# ---------------------------------------------------------------------------------------------
# Measurement helpers

clk_tck=$(getconf CLK_TCK)
server_pids="$(cat "$cp/pids/kube-apiserver"),$(cat "$cp/pids/etcd")"
# CPU time (ms) used so far by kube-apiserver and etcd.
server_ms() {
  local t=0 c p
  for c in kube-apiserver etcd; do
    p=$(cat "$cp/pids/$c")
    t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  echo $((t * 1000 / clk_tck))
}
now_ns() { date +%s%N; }

# Waits until the server uses under 10% of a core over 2 s (at most 90 s): seeding leaves work
# behind (repair loops, compaction).
settle() {
  local i a b
  for i in $(seq 45); do
    a=$(server_ms)
    sleep 2
    b=$(server_ms)
    [ $((b - a)) -lt 200 ] && return 0
  done
  log "the server did not settle (still $(( (b - a) / 2 )) ms CPU/s)"
}

# Background server CPU in ms per second, measured while nothing runs.
idle_rate() {
  local a b t0 t1
  a=$(server_ms); t0=$(now_ns)
  sleep 5
  b=$(server_ms); t1=$(now_ns)
  awk -v d=$((b - a)) -v s=$((t1 - t0)) 'BEGIN { printf "%.2f", d / (s / 1e9) }'
}

# measure KEY RUNS WARMUP [examples/measure.rs options] -- WORDS: WORDS is a string of
# shell-quoted words (no shell runs it). Appends to $res/rows.tsv: key median min max mean stddev
# user sys server_ms_per_run (ms) peak_rss (MiB).
measure() {
  local key=$1 runs=$2 warmup=$3 line
  shift 3
  local -a opts=() words
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  eval "words=($2)"
  log "measuring $key ($runs runs): ${words[*]}"
  line=$("$meter" --runs "$runs" --warmup "$warmup" --server "$server_pids" --idle "$idle" "${opts[@]}" -- "${words[@]}")
  printf '%s\t%s\n' "$key" "$line" >>"$res/rows.tsv"
}

# keepalive GROUP RESOURCES...: the floor a client is held to: examples/floor.rs fetches the same
# JSON pages of 500 on one keep-alive connection per list (the plugin's HTTP stack, TCP_NODELAY),
# the lists in parallel, each body read whole and never parsed; no process start-up counted.
keepalive() {
  local group=$1 r paths=()
  shift
  for r in "$@"; do
    case $r in services) paths+=(/api/v1/services) ;; *) paths+=("/apis/networking.k8s.io/v1/$r") ;; esac
  done
  log "measuring the keep-alive floor of $group ($RUNS runs)"
  "$floor" "$KUBECONFIG" 500 "$RUNS" "${paths[@]}" >"$res/floor-$group.tsv"
}

# ---------------------------------------------------------------------------------------------
# Read benchmarks

q() { printf %q "$1"; }
P=$(q "$plugin")
K="$(q "$kubectl") --cache-dir $(q "$kcache")"
# Each command is a string of shell-quoted words for `measure` (stdout is thrown away); the keys
# are the rows of examples/bench_report.rs, which labels them.
declare -A cmd ok
cmd[status_ours]="$P status"
cmd[status_ours_json]="$P status -o json"
cmd[status_ours_500]="$P status --chunk-size 500"
cmd[status_kubectl]="$K get servicecidrs,ipaddresses -o json"
# orphans exits 3 when it finds anything: that is success here, any other failure is not.
cmd[orphans_ours]="$P orphans"; ok[orphans_ours]=3
cmd[orphans_kubectl]="$K get servicecidrs,ipaddresses,services -A -o json"
# The floor as one process per run (start-up, kubeconfig, connections, TLS handshakes): what a
# command pays before its first byte, timed as the commands are.
F="$(q "$floor") $(q "$KUBECONFIG") 500 0"
N1=/apis/networking.k8s.io/v1
cmd[status_keepalive_new]="$F $N1/servicecidrs $N1/ipaddresses"
cmd[orphans_keepalive_new]="$F $N1/servicecidrs $N1/ipaddresses /api/v1/services"
read_keys=(status_ours status_ours_json status_ours_500 status_kubectl orphans_ours orphans_kubectl)

# Sanity: the data is what we think it is, and every command works.
"$plugin" status >/dev/null || die "status failed"
rc=0; "$plugin" orphans >"$res/orphans.txt" || rc=$?
[ "$rc" -eq 3 ] || die "orphans exited $rc (expected 3: the seed leaves orphans)"
fact ip_count "$("$kubectl" get ipaddresses --no-headers 2>/dev/null | wc -l)"

log "letting the server settle after seeding"
settle
idle=$(idle_rate)
fact idle "$idle"
log "idle server CPU: $idle ms/s"
: >"$res/rows.tsv"
for key in "${read_keys[@]}"; do
  measure "$key" "$RUNS" "$WARMUP" --ok "${ok[$key]:-0}" -- "${cmd[$key]}"
done
keepalive status servicecidrs ipaddresses
keepalive orphans servicecidrs ipaddresses services
for key in status_keepalive_new orphans_keepalive_new; do measure "$key" "$RUNS" "$WARMUP" -- "${cmd[$key]}"; done

# ---------------------------------------------------------------------------------------------
# Where the time goes

log "profiling status"
# Per-list timings of one run of the warm floor: to first byte, then the rest of each body (the
# apiserver streams list pages: it encodes while it sends).
"$floor" --lists "$KUBECONFIG" 500 1 $N1/servicecidrs $N1/ipaddresses /api/v1/services >"$res/lists.tsv"

# The plugin's own request log (-v), time-stamped as lines arrive. The reader is up before the
# plugin starts (opening the FIFO for writing waits for it), so the clock starts at the launch.
mkfifo "$res/v.fifo"
python3 -c '
import sys, time
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    for line in f:
        out.write(f"{time.time_ns()} {line}")
' "$res/v.fifo" "$res/status-v.log" &
reader=$!
exec 3>"$res/v.fifo"
v_t0=$(date +%s%N)
"$plugin" status -v 2>&3 >/dev/null
v_t1=$(date +%s%N)
exec 3>&-
wait "$reader"
fact v_t0 "$v_t0"
fact v_t1 "$v_t1"

# Kernel-side behaviour of one run: context switches (perf stat) and syscalls (strace -c).
if command -v perf >/dev/null; then
  perf stat -r 5 -x, -o "$res/perf-stat.csv" -e task-clock,context-switches,cpu-migrations,page-faults \
    "$plugin" status >/dev/null 2>&1 || rm -f "$res/perf-stat.csv"
fi
if command -v strace >/dev/null; then
  strace -c -f -o "$res/strace.txt" "$plugin" status >/dev/null 2>&1 || rm -f "$res/strace.txt"
fi

if [ -n "$profile_bin" ]; then
  # System-wide (-a), so the server's share shows next to the client's; the plugin's runs are told
  # apart by pid. Falls back to the plugin's processes only when -a is not allowed.
  : >"$res/perf.pids"
  loop="for i in \$(seq 10); do $(q "$profile_bin") status >/dev/null & echo \$! >>$(q "$res/perf.pids"); wait; done"
  scope="the whole machine (\`-a\`)"
  perf record -a -q -F 999 -o "$res/perf.data" -- bash -c "$loop" 2>/dev/null ||
    { : >"$res/perf.pids"; scope="the plugin's processes only";
      perf record -q -F 999 -o "$res/perf.data" -- bash -c "$loop" 2>/dev/null; } || true
  if [ -s "$res/perf.data" ] && [ -s "$res/perf.pids" ]; then
    fact perf_scope "$scope"
    fact apiserver_pid "$(cat "$cp/pids/kube-apiserver")"
    fact etcd_pid "$(cat "$cp/pids/etcd")"
    fact kcm_pid "$(cat "$cp/pids/kube-controller-manager" 2>/dev/null)"
    # A file missing here makes the report say perf was not usable.
    perf script -i "$res/perf.data" -F pid >"$res/perf-script.txt" 2>/dev/null || rm -f "$res/perf-script.txt"
    perf report -i "$res/perf.data" --stdio --no-children --pid "$(paste -sd, "$res/perf.pids")" \
      --percentage relative --sort dso,sym --percent-limit 1.5 >"$res/perf-report.txt" 2>/dev/null ||
      rm -f "$res/perf-report.txt"
    mv "$res/perf.pids" "$res/perf-pids.txt"
  fi
fi

# ---------------------------------------------------------------------------------------------
# delete --wait of an empty range

log "delete --wait of an empty range, with the controller ($DELETE_RUNS runs)"
measure delete_ctrl "$DELETE_RUNS" 0 --prepare "$(q "$cp/mkrange.sh") bench-empty" -- "$P delete bench-empty --wait"
log "delete --wait --remove-finalizer of an empty range, without the controller ($DELETE_RUNS runs)"
measure delete_noctrl "$DELETE_RUNS" 0 --prepare "$(q "$cp/mkrange.sh") bench-empty nocontroller" \
  -- "$P delete bench-empty --wait --remove-finalizer"
bash "$repo/scripts/controlplane.sh" start-controller "$cp" 2>/dev/null

# ---------------------------------------------------------------------------------------------
# BENCHMARKS.md

fact n "$N"
fact date "$(date -u +%Y-%m-%d)"
fact cores "$(nproc)"
fact cpu "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
fact mem_gib "$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
fact kernel "$(uname -sr)"
fact kubectl_v "$("$kubectl" version 2>/dev/null | awk '/^Client Version:/ { print $3 }')"
fact server_v "$("$kubectl" version 2>/dev/null | awk '/^Server Version:/ { print $3 }')"
fact etcd_v "$("$CONTROLPLANE_BIN/etcd" --version 2>/dev/null | awk '/etcd Version/ { print $3 }')"
fact plugin_v "$("$plugin" --version)"
fact rustc_v "$(rustc -V)"
fact runs "$RUNS"
fact warmup "$WARMUP"
fact delete_runs "$DELETE_RUNS"
fact grace_s "$GRACE_S"
fact criterion_dir "$criterion_dir"
"$report" "$res" "$OUT"
