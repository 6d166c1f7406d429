#!/usr/bin/env bash
# `serve` at scale: on a fresh control plane seeded with `examples/seed.rs N --mode
# unmanaged-ipaddresses` (the worst case: every IP is two findings), each exporter binary given is
# started in turn and measured with the same steps:
#
#   ready      time from start to /readyz 200 (the first list, and the first rendering)
#   scrapes    300 scrapes of /metrics on one keep-alive connection, as Prometheus makes them:
#              p50 and p99 of their time
#   RSS        after ready, after those 300 scrapes, and after the churn below plus 300 more
#   burst      5,000 IPAddresses created with `kubectl create -f` (outside every range: Orphaned):
#              time from kubectl's last answer to a scrape that counts all of them
#   churn      the 5,000 deleted again (10,000 creates and deletes in all), then 300 scrapes; the
#              same again (20,000); then /metrics compared with `status -o json`: allocated
#              addresses per range and CIDR, and the orphans
#
# Each exporter runs with -v, its log in BENCH_LOGS (default: a temporary directory, kept).
#
# Writes the "serve at scale" section of BENCHMARKS.md (between the serve markers).
#
#   scripts/bench-serve.sh [BINARY=LABEL ...]    default: the release build, labelled "this"
#
# Environment: BENCH_SERVE_N (100000), BENCH_OUT (BENCHMARKS.md), CONTROLPLANE_BIN.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$repo/BENCHMARKS.md}
N=${BENCH_SERVE_N:-100000}
BURST=5000
log() { echo "bench-serve: $*" >&2; }

(cd "$repo" && cargo build --release --locked --quiet --bin kubectl-servicecidr --example seed >&2)
target=${CARGO_TARGET_DIR:-$repo/target}/release
[ $# -gt 0 ] || set -- "$target/kubectl-servicecidr=this"
bin=${CONTROLPLANE_BIN:-$(bash "$repo/scripts/build-controlplane.sh" | tail -n 1)}
export CONTROLPLANE_BIN=$bin
# shellcheck source=scripts/bench-sections.sh
. "$repo/scripts/bench-sections.sh"

cp=$(mktemp -d "${TMPDIR:-/tmp}/servicecidr-serve.XXXXXX")
trap 'bash "$repo/scripts/controlplane.sh" stop "$cp" --clean >/dev/null 2>&1 || true' EXIT
export KUBECONFIG
KUBECONFIG=$(bash "$repo/scripts/controlplane.sh" start "$cp" | tail -n 1)
log "seeding $N IPAddresses"
"$target/examples/seed" "$N" --mode unmanaged-ipaddresses >/dev/null
burst=$cp/burst.yaml
python3 - "$BURST" >"$burst" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"---\napiVersion: networking.k8s.io/v1\nkind: IPAddress\nmetadata:\n  name: 10.250.{i // 256}.{i % 256}\nspec:\n  parentRef:\n    group: \"\"\n    resource: services\n    namespace: default\n    name: burst-{i}")
PY

logs=${BENCH_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/bench-serve-logs.XXXXXX")}
mkdir -p "$logs"
log "exporter logs in $logs"
rows=""
i=0
for pair in "$@"; do
  i=$((i + 1))
  plugin=${pair%%=*} label=${pair#*=}
  log "measuring $label ($plugin)"
  row=$(python3 - "$plugin" "$label" "$bin/kubectl" "$burst" "$BURST" "$logs/serve-$i.log" <<'PY'
import http.client, json, re, subprocess, sys, time

plugin, label, kubectl, burst, burst_n, logfile = sys.argv[1:7]
burst_n = int(burst_n)
serve = subprocess.Popen([plugin, "serve", "--listen", "127.0.0.1:0", "-v"],
                         stderr=open(logfile, "w"), stdout=subprocess.DEVNULL)
started = time.perf_counter()
host = None
while host is None:
    for line in open(logfile):
        if "http://" in line:
            host = line.split("http://")[1].split("/")[0]
    time.sleep(0.001)
conn = http.client.HTTPConnection(host, timeout=60)

def get(path):
    # The exporter ends a connection after 2 minutes; a scraper connects again.
    global conn
    for attempt in (0, 1):
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        except (http.client.RemoteDisconnected, ConnectionError):
            if attempt:
                raise
            conn.close()
            conn = http.client.HTTPConnection(host, timeout=60)

def rss():
    for line in open(f"/proc/{serve.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def scrapes(n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = get("/metrics")
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1]

def orphans(text):
    m = re.search(r'^servicecidr_findings\{kind="Orphaned"\} (\S+)$', text, re.M)
    return int(float(m.group(1))) if m else 0

while get("/readyz")[0] != 200:
    time.sleep(0.005)
ready = time.perf_counter() - started
rss_ready = rss()
p50, p99 = scrapes(300)
rss_300 = rss()
before = orphans(get("/metrics")[1])

def until_orphans(want):
    while True:
        if orphans(get("/metrics")[1]) == want:
            return time.perf_counter()
        time.sleep(0.002)

def churn():
    subprocess.run([kubectl, "create", "-f", burst], check=True, stdout=subprocess.DEVNULL)
    answered = time.perf_counter()
    reflected = (until_orphans(before + burst_n) - answered) * 1000
    subprocess.run([kubectl, "delete", "-f", burst, "--wait=false"], check=True, stdout=subprocess.DEVNULL)
    until_orphans(before)
    scrapes(300)
    return reflected, rss()

reflected, rss_churn = churn()
_, rss_churn2 = churn()

# /metrics against a fresh `status -o json`: allocated per range and CIDR, and the orphans.
text = get("/metrics")[1]
served = {(m[0], m[1]): int(float(m[2])) for m in re.findall(
    r'^servicecidr_range_allocated_addresses\{servicecidr="([^"]*)",cidr="([^"]*)",family="[^"]*"\} (\S+)$', text, re.M)}
status = json.loads(subprocess.run([plugin, "status", "-o", "json"], check=True, capture_output=True).stdout)
listed = {(r["name"], c["cidr"]): c["allocated"] for r in status["serviceCIDRs"] for c in r["cidrs"]}
agree = "yes" if served == listed and orphans(text) == status["orphanedIPAddresses"] else "NO"
serve.terminate()
serve.wait()
print(f"| {label} | {ready:.2f} s | {p50:.2f} ms | {p99:.2f} ms | {rss_ready:.1f} MiB | {rss_300:.1f} MiB | "
      f"{rss_churn:.1f} MiB | {rss_churn2:.1f} MiB | {rss_300 / rss_ready:.2f}× | {reflected:.0f} ms | {agree} |")
PY
)
  log "$row"
  rows+="$row"$'\n'
done

text=$(cat <<EOF
Measured $(date -u +%Y-%m-%d) by \`scripts/bench-serve.sh\` (kube-apiserver
$("$bin/kube-apiserver" --version | awk '{ print $2 }'), $(nproc) cores): one control plane seeded
with \`examples/seed.rs $N --mode unmanaged-ipaddresses\` ($N IPAddresses, every one an Unmanaged
and a DanglingParent finding, 1% Orphaned), each exporter started on it in turn. *Scrape* times are
of 300 scrapes on one keep-alive connection, as Prometheus scrapes; RSS after the first list, after
the 300 scrapes, after a churn of $BURST creates and $BURST deletes and 300 more scrapes, and after
the same churn again;
*burst* is the time from \`kubectl create -f\`'s last answer for $BURST IPAddresses to the first
scrape counting them all; *agrees* compares \`/metrics\` after the churn with \`status -o json\`.

| exporter | ready | scrape p50 | scrape p99 | RSS ready | RSS after 300 | RSS after churn | after 2nd churn | 300 ÷ ready | burst | agrees |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
${rows%$'\n'}
EOF
)
write_section serve "serve at scale" "$text"
log "wrote the serve at scale section of $OUT"
