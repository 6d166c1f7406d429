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
# Writes BENCHMARKS.md (or $BENCH_OUT); the section between the analysis markers is kept across runs.
#
# Environment: BENCH_RUNS (10), BENCH_WARMUP (2), BENCH_DELETE_RUNS (3),
# BENCH_OUT, BENCH_CRITERION=0 (skip cargo bench), BENCH_PERF=0 (skip the perf profile; it needs an
# unstripped build, made once in target/profiling), CONTROLPLANE_BIN (see scripts/controlplane.sh).
# Installs jq with apt-get when missing (as root).
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

command -v jq >/dev/null || apt_install jq || die "jq is needed"
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
log "building (release): plugin, seed, floor and measure examples"
cargo build --release --quiet
cargo build --release --quiet --example seed --example floor --example measure
floor=$target/release/examples/floor
meter=$target/release/examples/measure
for b in "$plugin" "$seed" "$floor" "$meter"; do [ -x "$b" ] || die "the build did not produce $b"; done
profile_bin=""
if [ "$perf_ok" = true ]; then
  # Same code and optimisation as release, with symbols (release strips them).
  log "building an unstripped copy for perf (target/profiling; slow the first time)"
  cargo build --quiet --profile profiling --bin kubectl-servicecidr \
    --config 'profile.profiling.inherits="release"' --config 'profile.profiling.strip=false' \
    --config 'profile.profiling.debug="line-tables-only"'
  profile_bin=$target/profiling/kubectl-servicecidr
fi

criterion_rows=""
if [ "${BENCH_CRITERION:-1}" != 0 ]; then
  log "cargo bench --bench audit (quiet machine: before the control plane starts)"
  cargo bench --quiet --bench audit >"${TMPDIR:-/tmp}/bench-criterion.$$.log" 2>&1 ||
    { tail -20 "${TMPDIR:-/tmp}/bench-criterion.$$.log" >&2; die "cargo bench failed"; }
  rm -f "${TMPDIR:-/tmp}/bench-criterion.$$.log"
  for dir in "$target"/criterion/audit_100k_ips_1k_ranges/*/new; do
    [ -f "$dir/estimates.json" ] || continue
    name=$(basename "$(dirname "$dir")")
    criterion_rows+=$(jq -r --arg name "$name" --slurpfile b "$dir/benchmark.json" '
      def t: if . >= 1e6 then "\(. / 1e4 | round / 100) ms" elif . >= 1e3 then "\(. / 10 | round / 100) µs" else "\(. * 10 | round / 10) ns" end;
      (if .slope then .slope else .mean end) as $e
      | ($b[0].throughput.Elements // 0) as $n
      | "| `\($name)` | \($e.point_estimate | t) | \($e.confidence_interval.lower_bound | t) – \($e.confidence_interval.upper_bound | t) | \($n) | \(if $n > 0 then ($e.point_estimate / $n | t) else "" end) |"' \
      "$dir/estimates.json")$'\n'
  done
  criterion_rows=${criterion_rows%$'\n'}
fi

# ---------------------------------------------------------------------------------------------
# Control plane

cp=$(mktemp -d "${TMPDIR:-/tmp}/servicecidr-bench.XXXXXX")
tmp_out=""
cleanup() {
  local rc=$?
  bash "$repo/scripts/controlplane.sh" stop "$cp" --clean >/dev/null 2>&1 || true
  [ -z "$tmp_out" ] || rm -f "$tmp_out"
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

log "seeding N=$N"
seed_t0=$(date +%s%N)
"$seed" "$N" >"$res/seed.out" 2>"$res/seed.err" || { cat "$res/seed.err" >&2; die "seeding failed"; }
seed_s=$(awk -v a="$seed_t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
seed_summary=$(cat "$res/seed.out")
seed_rate=$(grep -o 'bulk rate [0-9]* IPAddresses/s' "$res/seed.out" | grep -o '[0-9]*' || echo "?")
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
# shell-quoted words (no shell runs it). Appends to $res/rows.tsv: key label median min max mean
# stddev user sys server_ms_per_run (ms) peak_rss (MiB).
measure() {
  local key=$1 runs=$2 warmup=$3 line
  shift 3
  local -a opts=() words
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  eval "words=($2)"
  log "measuring ${label[$key]} ($runs runs)"
  line=$("$meter" --runs "$runs" --warmup "$warmup" --server "$server_pids" --idle "$idle" "${opts[@]}" -- "${words[@]}")
  printf '%s\t%s\t%s\n' "$key" "${label[$key]}" "$line" >>"$res/rows.tsv"
}

# summarize KEY: values (ms) on stdin, one per line, to a row like measure's (median, min, max, mean).
summarize() {
  sort -n | awk -v k="$1" -v l="${label[$1]}" '
    { v[NR] = $1; s += $1 }
    END {
      med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%s\t%s\t%f\t%f\t%f\t%f\t0\tnan\tnan\tnan\tnan\n", k, l, med, v[1], v[NR], s / NR
    }' >>"$res/rows.tsv"
}

# keepalive KEY RESOURCES...: the floor a client is held to: examples/floor.rs fetches the same
# JSON pages of 500 on one keep-alive connection per list (the plugin's HTTP stack, TCP_NODELAY),
# the lists in parallel, each body read whole and never parsed; no process start-up counted.
keepalive() {
  local key=$1 r paths=()
  shift
  for r in "$@"; do
    case $r in services) paths+=(/api/v1/services) ;; *) paths+=("/apis/networking.k8s.io/v1/$r") ;; esac
  done
  log "measuring ${label[$key]} ($RUNS runs)"
  "$floor" "$KUBECONFIG" 500 "$RUNS" "${paths[@]}" | cut -f1 | summarize "$key"
}

col() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k { print $c }' "$res/rows.tsv"; }
ms() { awk -v x="$1" 'BEGIN { if (x == "nan" || x == "") print "—"; else if (x >= 100) printf "%.0f ms", x; else printf "%.1f ms", x }'; }
ratio() { awk -v a="$(col "$1" 3)" -v b="$(col "$2" 3)" 'BEGIN { printf "%.2f×", a / b }'; }
rss_of() { awk -v x="$(col "$1" 11)" 'BEGIN { print (x == "nan" || x == "") ? "—" : x " MiB" }'; }

# ---------------------------------------------------------------------------------------------
# Read benchmarks

q() { printf %q "$1"; }
P=$(q "$plugin")
K="$(q "$kubectl") --cache-dir $(q "$kcache")"
# Each command is a string of shell-quoted words for `measure` (stdout is thrown away).
declare -A cmd label ok
cmd[status_ours]="$P status";                                   label[status_ours]='`kubectl-servicecidr status`'
cmd[status_ours_json]="$P status -o json";                      label[status_ours_json]='`kubectl-servicecidr status -o json`'
cmd[status_kubectl]="$K get servicecidrs,ipaddresses -o json";  label[status_kubectl]='`kubectl get servicecidrs,ipaddresses -o json`'
# orphans exits 3 when it finds anything: that is success here, any other failure is not.
cmd[orphans_ours]="$P orphans";                                 label[orphans_ours]='`kubectl-servicecidr orphans`'; ok[orphans_ours]=3
cmd[orphans_kubectl]="$K get servicecidrs,ipaddresses,services -A -o json"; label[orphans_kubectl]='`kubectl get servicecidrs,ipaddresses,services -A -o json`'
cmd[status_ours_500]="$P status --chunk-size 500";              label[status_ours_500]='`kubectl-servicecidr status --chunk-size 500` (kubectl'"'"'s page size)'
label[status_keepalive]='keep-alive floor: the same JSON pages of 500, not parsed (`examples/floor.rs`)'
label[orphans_keepalive]=${label[status_keepalive]}
# The floor as one process per run (start-up, kubeconfig, connections, TLS handshakes): what a
# command pays before its first byte, timed as the commands are.
F="$(q "$floor") $(q "$KUBECONFIG") 500 0"
N1=/apis/networking.k8s.io/v1
cmd[status_keepalive_new]="$F $N1/servicecidrs $N1/ipaddresses"
cmd[orphans_keepalive_new]="$F $N1/servicecidrs $N1/ipaddresses /api/v1/services"
label[status_keepalive_new]='the same floor as a process per run (start-up, kubeconfig, TLS handshakes), as a command pays'
label[orphans_keepalive_new]=${label[status_keepalive_new]}
read_keys=(status_ours status_ours_json status_ours_500 status_kubectl orphans_ours orphans_kubectl)

# Sanity: the data is what we think it is, and every command works.
"$plugin" status >/dev/null || die "status failed"
rc=0; "$plugin" orphans >"$res/orphans.txt" || rc=$?
[ "$rc" -eq 3 ] || die "orphans exited $rc (expected 3: the seed leaves orphans)"
orphan_summary=$(awk 'NF == 0 { exit } { print }' "$res/orphans.txt")
ip_count=$("$kubectl" get ipaddresses --no-headers 2>/dev/null | wc -l)

log "letting the server settle after seeding"
settle
idle=$(idle_rate)
log "idle server CPU: $idle ms/s"
: >"$res/rows.tsv"
for key in "${read_keys[@]}"; do
  measure "$key" "$RUNS" "$WARMUP" --ok "${ok[$key]:-0}" -- "${cmd[$key]}"
done
keepalive status_keepalive servicecidrs ipaddresses
keepalive orphans_keepalive servicecidrs ipaddresses services
for key in status_keepalive_new orphans_keepalive_new; do measure "$key" "$RUNS" "$WARMUP" -- "${cmd[$key]}"; done

echo
echo "N=$N IPAddresses ($ip_count in the cluster)"
for key in "${read_keys[@]}"; do
  printf '  %-62s median %10s  (min %s, max %s)\n' "${label[$key]}" "$(ms "$(col "$key" 3)")" "$(ms "$(col "$key" 4)")" "$(ms "$(col "$key" 5)")"
done
for g in status orphans; do
  echo "  $g: ours/kubectl $(ratio ${g}_ours ${g}_kubectl), ours/keep-alive floor $(ratio ${g}_ours ${g}_keepalive) ($(ratio ${g}_ours ${g}_keepalive_new) as a process)"
done

# ---------------------------------------------------------------------------------------------
# Where the time goes

log "profiling status"
# Per-list timings of one run of the warm floor: to first byte, then the rest of each body (the
# apiserver streams list pages: it encodes while it sends).
pages=$("$floor" --lists "$KUBECONFIG" 500 1 /apis/networking.k8s.io/v1/servicecidrs \
  /apis/networking.k8s.io/v1/ipaddresses /api/v1/services |
  awk -F'\t' '$1 == "list" { printf "| `%s` | %d | %.1f MiB | %.0f ms | %.0f ms | %.1f ms |\n", $2, $3, $4 / 1048576, $5, $6, ($5 + $6) / $3 }')

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
timeline=$(python3 - "$res/status-v.log" "$v_t0" "$v_t1" <<'PY'
import re, sys
t0, t1 = int(sys.argv[2]), int(sys.argv[3])
ev = []
for l in open(sys.argv[1]):
    t, _, rest = l.partition(" ")
    ev.append(((int(t) - t0) / 1e6, re.sub(r"\x1b\[[0-9;]*m", "", rest).strip()))
def first(pat):
    return next((t for t, r in ev if re.search(pat, r)), None)
def last(pat):
    return next((t for t, r in reversed(ev) if re.search(pat, r)), None)
end = (t1 - t0) / 1e6
# -v logs each request as it goes out, each answer read whole, and each list page read.
disc_req = first(r"GET \S*/apis/networking\.k8s\.io/v1$")
disc_resp = first(r"discover the networking\.k8s\.io API: ")
ip_req = first(r"GET \S*/ipaddresses\?")
ip_resp = first(r"list ipaddresses: page read")
last_resp = last(r"list ipaddresses: page read")
n_pages = sum(1 for _, r in ev if re.search(r"list ipaddresses: page read", r))
def d(a, b):
    return "?" if a is None or b is None else f"{b - a:.0f} ms"
first_req = min((t for t in (disc_req, ip_req) if t is not None), default=None)
print(f"| process start to the first request (config, client) | {d(0.0, first_req)} |")
print(f"| API discovery (`/apis/networking.k8s.io/v1`), beside the first lists | {d(disc_req, disc_resp)} |")
print(f"| first IPAddress page, read whole (new connection) | {d(ip_req, ip_resp)} |")
print(f"| the other {n_pages - 1} IPAddress pages (ServiceCIDRs alongside) | {d(ip_resp, last_resp)} |")
print(f"| after the last page: audit, render, exit | {d(last_resp, end)} |")
print(f"| **total** | {d(0.0, end)} |")
PY
)

# Kernel-side behaviour of one run: context switches (perf stat) and syscalls (strace -c).
kstats=""
if command -v perf >/dev/null; then
  kstats+=$(perf stat -r 5 -x, -e task-clock,context-switches,cpu-migrations,page-faults "$plugin" status 2>&1 >/dev/null |
    awk -F, '$3 != "" && $1 ~ /^[0-9.]+$/ { printf "| %s | %s %s |\n", $3, $1, $2 }')
fi
if command -v strace >/dev/null; then
  kstats+=$'\n'$(strace -c -f -o "$res/strace.txt" "$plugin" status >/dev/null 2>&1 && awk '
    /^-/ { sep++; next }
    sep == 1 && NF >= 5 { printf "| syscall `%s` | %s calls, %.0f ms |\n", $NF, $4, $2 * 1000; if (++n == 6) exit }' "$res/strace.txt")
fi
[ -n "$kstats" ] || kstats="| (neither perf nor strace available) | |"

perf_section="perf was not usable here (or BENCH_PERF=0): see the phases above."
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
    plugin_pids=$(paste -sd, "$res/perf.pids")
    by_proc=$(perf script -i "$res/perf.data" -F pid 2>/dev/null |
      awk -v plug=",$plugin_pids," -v api="$(cat "$cp/pids/kube-apiserver")" -v etcd="$(cat "$cp/pids/etcd")" \
        -v kcm="$(cat "$cp/pids/kube-controller-manager" 2>/dev/null)" '
        NF {
          id = $1; total++
          if (index(plug, "," id ",")) k = "kubectl-servicecidr (the 10 runs)"
          else if (id == api) k = "kube-apiserver"
          else if (id == etcd) k = "etcd"
          else if (id == kcm) k = "kube-controller-manager"
          else if (id == 0) k = "idle"
          else k = "anything else on the machine"
          s[k]++
        }
        END { for (k in s) printf "| %s | %.1f%% |\n", k, s[k] * 100 / total }' | sort -t'|' -k3 -rn)
    by_sym=$(perf report -i "$res/perf.data" --stdio --no-children --pid "$plugin_pids" --percentage relative \
      --sort dso,sym --percent-limit 1.5 2>/dev/null |
      awk '/^ +[0-9.]+%/ { p = $1; d = $2; $1 = ""; $2 = ""; sub(/^ +\[[.kg]\] +/, ""); s = $0
        if (length(s) > 100) s = substr(s, 1, 97) "..."; gsub(/\|/, "\\|", s); printf "| %s | %s | `%s` |\n", p, d, s }')
    perf_section="\`perf record -F 999\` over $scope while \`status\` runs 10 times (an unstripped
build of the same code, \`target/profiling\`). Share of all CPU samples (2 CPUs; *idle* is unused
capacity):

| where | share of samples |
|---|---:|
$by_proc

Inside the plugin's processes (self time, share of the plugin's samples; entries over 1.5%):

| share | binary | symbol |
|---:|---|---|
$by_sym"
  fi
fi

# ---------------------------------------------------------------------------------------------
# delete --wait of an empty range

label[delete_ctrl]='`delete --wait` (controller running)'
label[delete_noctrl]='`delete --wait --remove-finalizer` (controller stopped)'
log "delete --wait of an empty range, with the controller ($DELETE_RUNS runs)"
measure delete_ctrl "$DELETE_RUNS" 0 --prepare "$(q "$cp/mkrange.sh") bench-empty" -- "$P delete bench-empty --wait"
log "delete --wait --remove-finalizer of an empty range, without the controller ($DELETE_RUNS runs)"
measure delete_noctrl "$DELETE_RUNS" 0 --prepare "$(q "$cp/mkrange.sh") bench-empty nocontroller" \
  -- "$P delete bench-empty --wait --remove-finalizer"
bash "$repo/scripts/controlplane.sh" start-controller "$cp" 2>/dev/null
over() { awk -v x="$(col "$1" "$2")" -v g="$GRACE_S" 'BEGIN { printf "%.2f s", x / 1000 - g }'; }
echo "  delete --wait, controller:    $(over delete_ctrl 3) over the ${GRACE_S} s grace (median)"
echo "  delete --wait, no controller: $(over delete_noctrl 3) over the ${GRACE_S} s grace (median)"

# ---------------------------------------------------------------------------------------------
# BENCHMARKS.md

vjson=$("$kubectl" version -o json 2>/dev/null || echo '{}')
kubectl_v=$(jq -r '.clientVersion.gitVersion // "?"' <<<"$vjson")
server_v=$(jq -r '.serverVersion.gitVersion // "?"' <<<"$vjson")
etcd_v=$("$CONTROLPLANE_BIN/etcd" --version 2>/dev/null | awk '/etcd Version/ { print $3 }')
plugin_v=$("$plugin" --version)
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
mem_gib=$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)

# shellcheck source=scripts/bench-sections.sh
. "$repo/scripts/bench-sections.sh"
analysis=$(section analysis "(Reading of the numbers: edit this section by hand; scripts/bench.sh keeps it when it rewrites the file.)")
# scripts/bench-scale.sh and scripts/bench-fleet.sh write these; kept as they are here.
scale=$(section scale "(Run scripts/bench-scale.sh.)")
fleet=$(section fleet "(Run scripts/bench-fleet.sh.)")

# row KEY BASES...: the row of KEY with its ratio to each base (kubectl, keep-alive floor, the
# floor as a process); an empty base leaves a dash.
row() {
  local key=$1 base r ratios=""
  shift
  for base in "$@"; do
    r="—"
    [ -z "$base" ] || r=$(ratio "$key" "$base")
    ratios+=" | $r"
  done
  printf '| %s | %s | %s – %s | %s | %s | %s%s |\n' "${label[$key]}" \
    "$(ms "$(col "$key" 3)")" "$(ms "$(col "$key" 4)")" "$(ms "$(col "$key" 5)")" \
    "$(awk -v u="$(col "$key" 8)" -v s="$(col "$key" 9)" 'BEGIN { if (u == "nan") print "—"; else printf "%.0f + %.0f ms", u, s }')" \
    "$(ms "$(col "$key" 10)")" "$(rss_of "$key")" "$ratios"
}

table_rows=""
table_keys=()
for key in "${read_keys[@]}"; do
  table_keys+=("$key")
  case $key in *_kubectl) table_keys+=("${key%%_*}_keepalive" "${key%%_*}_keepalive_new") ;; esac
done
for key in "${table_keys[@]}"; do
  group=${key%%_*}
  case $key in
    *_keepalive | *_keepalive_new) table_rows+=$(row "$key" "" "" "") ;;
    *_kubectl) table_rows+=$(row "$key" "" "${group}_keepalive" "${group}_keepalive_new") ;;
    *) table_rows+=$(row "$key" "${group}_kubectl" "${group}_keepalive" "${group}_keepalive_new") ;;
  esac
  table_rows+=$'\n'
done
table_rows=${table_rows%$'\n'}

tmp_out=$(mktemp "$OUT.XXXXXX")
cat >"$tmp_out" <<EOF
# Benchmarks

Generated by \`scripts/bench.sh $N\` on $(date -u +%Y-%m-%d) (UTC). Re-run it to refresh every number
here; only the *Analysis* section is written by hand.

- **Machine:** $(nproc) cores ($cpu_model), $mem_gib GiB RAM, $(uname -sr)
- **Cluster:** local control plane from \`scripts/controlplane.sh\` (everything on 127.0.0.1, etcd
  with \`--unsafe-no-fsync\`): kube-apiserver $server_v, etcd $etcd_v, kubectl $kubectl_v
- **Plugin:** $plugin_v (release build), $(rustc -V)
- **Timer:** \`examples/measure.rs\` (no shell; CPU and peak RSS from \`wait4\`, as \`/usr/bin/time\`
  gets them); $RUNS runs after $WARMUP warm-up runs per command; every column comes from the same
  runs; peak RSS is the median of the largest single process of the command
- **Data:** N = $N IPAddresses ($ip_count objects in the cluster, with the default
  \`kubernetes\` Service's), seeded by \`examples/seed.rs\`: 20 ServiceCIDRs (10 dual-stack), Services
  with explicit clusterIPs (one in three in dual-stack ranges is dual-stack), 1% orphaned
  (their range deleted with its finalizer stripped). \`orphans\` finds:
\`\`\`
$orphan_summary
\`\`\`
- **Seeding:** $seed_summary (wall time including setup: $seed_s s)

## Reading the cluster

Median wall time of one invocation. *Client CPU* is user and system time of the command's processes;
*server CPU* is kube-apiserver + etcd CPU time per invocation (idle background of $idle ms/s
subtracted). Ratios compare medians (below 1 is faster than the reference).

| command | median | min – max | client CPU (user + sys) | server CPU | peak RSS | ÷ kubectl | ÷ keep-alive floor | ÷ floor as a process |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
$table_rows

kubectl and the keep-alive floor use pages of 500 (kubectl's default \`--chunk-size\`,
\`limit=500\`); the plugin uses its own default of 5,000 (\`cluster::DEFAULT_CHUNK_SIZE\`), except in
the \`--chunk-size 500\` row, which shows what the page size alone is worth. The *keep-alive floor*
is what any client that reads JSON pages of 500 one after another must wait for: one connection per
list, the lists in parallel, each body read to its end and not parsed, timed inside the process.
The *floor as a process* is that client run once per process and timed as the commands are: process
start, kubeconfig, connections and TLS handshakes, then the same pages.
kubectl reads its discovery cache from a warm \`--cache-dir\`. The floor parses nothing, so its
time is the server's answer; *server CPU* shows what the server spends on each command.

## delete --wait of an empty range

$DELETE_RUNS runs each; before each run the range is created with the controller running (so it carries
the finalizer and is Ready), untimed. The plugin waits out a ${GRACE_S} s grace period after the
deletionTimestamp before anything can release the range, so *overhead* is wall time minus ${GRACE_S} s.
With the controller running, the controller releases the range: it counts its own ${GRACE_S} s from
the deletionTimestamp, which has one-second resolution, so it can finish up to a second early
(a negative overhead); the plugin only watches it go. Without the controller, the plugin checks
every IPAddress again and removes the finalizer itself.

| scenario | median | min – max | overhead (median) |
|---|---:|---:|---:|
| ${label[delete_ctrl]} | $(ms "$(col delete_ctrl 3)") | $(ms "$(col delete_ctrl 4)") – $(ms "$(col delete_ctrl 5)") | $(over delete_ctrl 3) |
| ${label[delete_noctrl]} | $(ms "$(col delete_noctrl 3)") | $(ms "$(col delete_noctrl 4)") – $(ms "$(col delete_noctrl 5)") | $(over delete_noctrl 3) |

## Pure audit (criterion)

\`cargo bench --bench audit\`: 100,000 IPAddresses × 1,000 ServiceCIDRs (mixed IPv4/IPv6, nested
and overlapping, 1% orphans, ~97,000 Services), built deterministically in \`benches/audit.rs\`. Run
before the control plane started.

| benchmark | estimate | 95% CI | elements | per element |
|---|---:|---:|---:|---:|
${criterion_rows:-| (skipped: BENCH_CRITERION=0) | | | | |}

## Where the time goes (\`status\`, N = $N)

Per-list timings of one run of the warm keep-alive floor (JSON pages of 500, the three lists in
parallel). The apiserver streams list pages, encoding items as it sends them, so its work is
*to first byte* plus most of *rest of the body*:

| list | pages | bytes | Σ to first byte | Σ rest of the body | per page (first byte + rest) |
|---|---:|---:|---:|---:|---:|
$pages

Phases of one \`kubectl-servicecidr status -v\` run, from its request log (lines time-stamped as
they arrive on a pipe; a request ends when its log span closes; -v itself adds a little):

| phase | time |
|---|---:|
$timeline

One \`status\` run seen from the kernel (\`perf stat -r 5\` averages; syscalls from one
\`strace -c -f\` run, top 6 by time, which strace itself slows down):

| measure | value |
|---|---:|
$kstats

$perf_section

## Analysis

<!-- analysis:start -->
$analysis
<!-- analysis:end -->

## The scale curve

<!-- scale:start -->
$scale
<!-- scale:end -->

## Many clusters

<!-- fleet:start -->
$fleet
<!-- fleet:end -->
EOF
mv "$tmp_out" "$OUT"
tmp_out=""
log "wrote $OUT"
