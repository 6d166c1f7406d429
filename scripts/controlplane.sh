#!/usr/bin/env bash
# Throwaway Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager running only the
# service-cidr controller) on loopback ports, for end-to-end tests and demos.
#
#   controlplane.sh start DIR [--no-controller] [--owner PID]
#       Start everything in DIR (created if missing). Prints the kubeconfig path as the last (only)
#       stdout line; progress goes to stderr. With --owner PID a detached watchdog runs `stop DIR`
#       once PID has exited (a test binary passes its own PID so cleanup happens even on panic).
#   controlplane.sh stop DIR [--clean]
#       TERM (then KILL) every process started for DIR; idempotent. --clean also removes DIR.
#   controlplane.sh restart-apiserver DIR     kill kube-apiserver, start it with the same command line
#   controlplane.sh stop-controller DIR       stop kube-controller-manager
#   controlplane.sh start-controller DIR      start kube-controller-manager (same command line)
#
# Environment: CONTROLPLANE_BIN (use these binaries instead of scripts/build-controlplane.sh, e.g. the
# last stdout line of `build-controlplane.sh 1.34`; the script's flags suit 1.34 and 1.37 alike),
# CONTROLPLANE_APISERVER_ARGS (extra kube-apiserver flags, split on whitespace, appended after the
# script's own: a plain flag given twice takes the later value, --runtime-config and --feature-gates
# merge; e.g. "--runtime-config=networking.k8s.io/v1beta1=true", which 1.34 serves beside v1 and 1.37
# accepts but serves nothing for; recorded in cmd/kube-apiserver.sh, so restart-apiserver keeps
# them), CONTROLPLANE_TIMEOUT (seconds per readiness wait, default 60),
# CONTROLPLANE_STOP_GRACE_MS (TERM to KILL, default 2500).
# CONTROLPLANE_APISERVER2_ARGS (optional): also start a second kube-apiserver, kube-apiserver-2, on the
# same etcd with the first one's flags plus these (appended after CONTROLPLANE_APISERVER_ARGS), its
# own port, kubeconfig-2 (same users and contexts) and APISERVER2_PORT, APISERVER2_URL and KUBECONFIG2
# in DIR/env. start waits for its /readyz too; stop stops it; restart-apiserver leaves it alone. Use:
# a client-facing server that serves ServiceCIDR/IPAddress at networking.k8s.io/v1beta1 only, as a
# 1.31-1.32 cluster does, while the first apiserver (v1) runs the ClusterIP allocator and the
# controllers. With the 1.34 binaries (1.37 cannot emulate below 1.34):
# CONTROLPLANE_APISERVER2_ARGS="--emulated-version=1.32 --runtime-config=networking.k8s.io/v1beta1=true".
# Create and delete Services through the first apiserver only: the second one (emulating 1.32, feature
# MultiCIDRServiceAllocator off) allocates ClusterIPs from a bitmap of the default range and writes
# no IPAddress objects.
#
# Layout of DIR: env (shell exports), kubeconfig (contexts admin [current], viewer, operator and migrator),
# controller.kubeconfig, tokens.csv, pki/, etcd/ (data), cmd/<component>.sh (exact command lines, reused
# on restart), logs/<component>.log, pids/<component> (one file each, removed by stop).
set -euo pipefail

self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
here=$(dirname "$self")
timeout_s=${CONTROLPLANE_TIMEOUT:-60}

log() { echo "controlplane: $*" >&2; }
die() { echo "controlplane: error: $*" >&2; exit 1; }
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$self" >&2; exit 2; }

now_ms() { date +%s%3N; }

# Last lines of every log in DIR, for failure messages.
log_tails() {
  local f
  for f in "$dir"/logs/*.log; do
    [ -f "$f" ] || continue
    echo "----- tail of $f -----" >&2
    tail -n 25 "$f" >&2
  done
}

cleanup_on_fail=false
fail() {
  echo "controlplane: error: $*" >&2
  log_tails
  if [ "$cleanup_on_fail" = true ]; then
    kill_components kube-controller-manager kube-apiserver-2 kube-apiserver etcd watchdog
  fi
  exit 1
}

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

# Is PID alive and one of ours (its command line mentions DIR)? Guards against PID reuse.
ours() {
  local pid=$1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir"
}

pid_of() { cat "$dir/pids/$1" 2>/dev/null || true; }

# TERM the named components, wait up to 2.5 s, then KILL (kube-apiserver 1.37 stops listening at once
# but does not exit on TERM for 40 s+ here). Removes their pid files.
kill_components() {
  local c pid pids=() deadline killed=false
  for c in "$@"; do
    pid=$(pid_of "$c")
    if [ -n "$pid" ] && [ "$pid" != "$$" ] && ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  deadline=$(( $(now_ms) + ${CONTROLPLANE_STOP_GRACE_MS:-2500} ))
  while [ ${#pids[@]} -gt 0 ]; do
    local alive=()
    for pid in "${pids[@]}"; do
      if kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        alive+=("$pid")
      fi
    done
    pids=("${alive[@]+"${alive[@]}"}")
    [ ${#pids[@]} -eq 0 ] && break
    if [ "$(now_ms)" -ge "$deadline" ]; then
      # After KILL, still wait (briefly) for them to be gone, so that their ports are free again.
      [ "$killed" = true ] && { log "processes ${pids[*]} survived KILL"; break; }
      log "killing ${pids[*]} (did not stop on TERM)"
      kill -KILL "${pids[@]}" 2>/dev/null || true
      killed=true
      deadline=$(( $(now_ms) + 3000 ))
    fi
    sleep 0.1
  done
  for c in "$@"; do rm -f "$dir/pids/$c"; done
}

# Launch DIR/cmd/NAME.sh detached (own session, stdio to its log), wait until it wrote its pid file.
launch() {
  local name=$1 i
  rm -f "$dir/pids/$name"
  setsid bash "$dir/cmd/$name.sh" </dev/null >>"$dir/logs/$name.log" 2>&1 &
  disown
  for i in $(seq 1 100); do
    [ -s "$dir/pids/$name" ] && return 0
    sleep 0.02
  done
  fail "$name did not start"
}

# Write DIR/cmd/NAME.sh: records its own pid, then execs the command line given as arguments.
write_cmd() {
  local name=$1; shift
  {
    echo '#!/usr/bin/env bash'
    echo "# generated by controlplane.sh: exact command line of $name (reused by restart)"
    printf 'echo $$ > %q\n' "$dir/pids/$name"
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
  } >"$dir/cmd/$name.sh"
}

alive() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

kc() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig" --request-timeout=5s "$@"; }

# Poll CHECK (a command) until it succeeds; the named components must stay alive meanwhile.
wait_until() {
  local what=$1 deadline=$2; shift 2
  local -a components=()
  while [ "$1" != -- ]; do components+=("$1"); shift; done
  shift
  while ! "$@" >/dev/null 2>&1; do
    local c
    for c in "${components[@]}"; do
      alive "$c" || fail "$c exited while waiting for $what"
    done
    [ "$(now_ms)" -ge "$deadline" ] && fail "timed out after ${timeout_s}s waiting for $what"
    sleep 0.2
  done
}

etcd_healthy() { curl -fsS --max-time 1 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" | grep -q '"health":"true"'; }
apiserver_ready() { kc get --raw /readyz; }
apiserver2_ready() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig-2" --request-timeout=5s get --raw /readyz; }

wait_apiserver() {
  local deadline=$(( $(now_ms) + timeout_s * 1000 ))
  wait_until "kube-apiserver /readyz" "$deadline" kube-apiserver etcd -- apiserver_ready
  wait_until "the default ServiceCIDR 'kubernetes'" "$deadline" kube-apiserver -- kc get servicecidr kubernetes
}

start_controller() {
  [ -f "$dir/cmd/kube-controller-manager.sh" ] || die "$dir has no controller command line (run start first)"
  if alive kube-controller-manager; then log "kube-controller-manager already running"; return 0; fi
  local deadline=$(( $(now_ms) + timeout_s * 1000 ))
  : >>"$dir/logs/kube-controller-manager.log"
  # Only lines written by this run count for the sync check.
  echo "=== controlplane.sh: start $(date -Is) ===" >>"$dir/logs/kube-controller-manager.log"
  local from
  from=$(wc -l <"$dir/logs/kube-controller-manager.log")
  launch kube-controller-manager
  synced_since() { tail -n +"$from" "$dir/logs/kube-controller-manager.log" | grep -qE 'Caches are synced|Started controller'; }
  wait_until "the service-cidr controller to sync" "$deadline" kube-controller-manager -- synced_since
  wait_until "servicecidr/kubernetes Ready=True" "$deadline" kube-controller-manager kube-apiserver -- \
    kc wait --for=condition=Ready servicecidr/kubernetes --timeout=5s
}

# Pick N distinct free loopback TCP ports outside the ephemeral range (so client connections made
# meanwhile, e.g. by kubectl, cannot take them before the servers bind).
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
try:
    lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
except OSError:
    lo, hi = 32768, 60999
pool = [p for p in range(10000, 65535) if not lo <= p <= hi]
random.shuffle(pool)
held, out = [], []
for p in pool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    held.append(s)
    out.append(p)
    if len(out) == n:
        break
for s in held:
    s.close()
print(" ".join(map(str, out)))
EOF
}

rand_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

gen_pki() {
  local pki=$dir/pki
  mkdir -p "$pki"
  [ -s "$pki/ca.crt" ] && [ -s "$pki/apiserver.crt" ] && [ -s "$pki/client.crt" ] && [ -s "$pki/sa.key" ] && return 0
  (
    cd "$pki"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=kubectl-servicecidr-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out ca.crt 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out apiserver.key 2>/dev/null
    openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    # A client certificate for the user cert-admin (system:masters): the mTLS path of kubeconfigs.
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client.key 2>/dev/null
    openssl req -new -key client.key -subj "/O=system:masters/CN=cert-admin" -out client.csr 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" >client.ext
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
      -extfile client.ext -out client.crt 2>/dev/null
    # SEC1 ("EC PRIVATE KEY"): --service-account-key-file finds no public key in a PKCS#8 file.
    openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
    chmod 600 ./*.key
  ) || fail "openssl failed to generate certificates in $pki"
}

write_kubeconfigs() {
  local server="https://127.0.0.1:$APISERVER_PORT" ca="$dir/pki/ca.crt"
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $server
    certificate-authority: $ca
users:
- name: admin
  user:
    token: $ADMIN_TOKEN
- name: viewer
  user:
    token: $VIEWER_TOKEN
- name: operator
  user:
    token: $OPERATOR_TOKEN
- name: migrator
  user:
    token: $MIGRATOR_TOKEN
- name: cert-admin
  user:
    client-certificate-data: $(base64 -w0 "$dir/pki/client.crt")
    client-key-data: $(base64 -w0 "$dir/pki/client.key")
contexts:
- name: admin
  context:
    cluster: local
    user: admin
- name: viewer
  context:
    cluster: local
    user: viewer
- name: operator
  context:
    cluster: local
    user: operator
- name: migrator
  context:
    cluster: local
    user: migrator
- name: cert-admin
  context:
    cluster: local
    user: cert-admin
current-context: admin
EOF
  cat >"$dir/controller.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $server
    certificate-authority: $ca
users:
- name: admin
  user:
    token: $ADMIN_TOKEN
contexts:
- name: admin
  context:
    cluster: local
    user: admin
current-context: admin
EOF
  chmod 600 "$dir/kubeconfig" "$dir/controller.kubeconfig"
  rm -f "$dir/kubeconfig-2"
  if [ -f "$dir/cmd/kube-apiserver-2.sh" ]; then
    (umask 077 && sed "s#^    server: $server\$#    server: https://127.0.0.1:$APISERVER2_PORT#" "$dir/kubeconfig" >"$dir/kubeconfig-2")
  fi
}

write_env() {
  {
    printf 'export CONTROLPLANE_DIR=%q\n' "$dir"
    printf 'export CONTROLPLANE_BIN=%q\n' "$bin"
    printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
    printf 'export ETCD_CLIENT_PORT=%q\n' "$ETCD_CLIENT_PORT"
    printf 'export ETCD_PEER_PORT=%q\n' "$ETCD_PEER_PORT"
    printf 'export APISERVER_PORT=%q\n' "$APISERVER_PORT"
    printf 'export APISERVER_URL=%q\n' "https://127.0.0.1:$APISERVER_PORT"
    printf 'export ADMIN_TOKEN=%q\n' "$ADMIN_TOKEN"
    printf 'export VIEWER_TOKEN=%q\n' "$VIEWER_TOKEN"
    printf 'export OPERATOR_TOKEN=%q\n' "$OPERATOR_TOKEN"
    printf 'export MIGRATOR_TOKEN=%q\n' "$MIGRATOR_TOKEN"
    printf 'export CONTROLLER_ENABLED=%q\n' "$controller"
    if [ -f "$dir/cmd/kube-apiserver-2.sh" ]; then
      printf 'export APISERVER2_PORT=%q\n' "$APISERVER2_PORT"
      printf 'export APISERVER2_URL=%q\n' "https://127.0.0.1:$APISERVER2_PORT"
      printf 'export KUBECONFIG2=%q\n' "$dir/kubeconfig-2"
    fi
  } >"$dir/env"
  chmod 600 "$dir/env"
}

# One attempt at bringing up etcd + apiserver on fresh ports. Returns 3 on a port clash (caller retries).
bring_up() {
  read -r ETCD_CLIENT_PORT ETCD_PEER_PORT APISERVER_PORT APISERVER2_PORT <<<"$(free_ports 4)"
  [ -n "$APISERVER2_PORT" ] || die "could not find free loopback ports"
  local -a apiserver_extra=() apiserver2_extra=()
  read -r -a apiserver_extra <<<"${CONTROLPLANE_APISERVER_ARGS:-}"
  read -r -a apiserver2_extra <<<"${CONTROLPLANE_APISERVER2_ARGS:-}"

  write_cmd etcd "$bin/etcd" \
    --name=controlplane \
    --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="controlplane=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --listen-metrics-urls="" \
    --unsafe-no-fsync=true \
    --log-level=warn

  # Same flags for kube-apiserver-2, but its own port (replaced below).
  local -a apiserver_args=("$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --cert-dir="$dir/pki" \
    --tls-cert-file="$dir/pki/apiserver.crt" \
    --tls-private-key-file="$dir/pki/apiserver.key" \
    --service-cluster-ip-range=10.96.0.0/16,fd00:10:96::/112 \
    --authorization-mode=RBAC \
    --token-auth-file="$dir/tokens.csv" \
    --client-ca-file="$dir/pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-signing-key-file="$dir/pki/sa.key" \
    --service-account-key-file="$dir/pki/sa.key" \
    --allow-privileged=true \
    --disable-admission-plugins=ServiceAccount \
    --endpoint-reconciler-type=none \
    --profiling=false \
    --v=1 \
    "${apiserver_extra[@]+"${apiserver_extra[@]}"}")
  write_cmd kube-apiserver "${apiserver_args[@]}"
  if [ ${#apiserver2_extra[@]} -gt 0 ]; then
    write_cmd kube-apiserver-2 "${apiserver_args[@]/#--secure-port=*/--secure-port=$APISERVER2_PORT}" \
      "${apiserver2_extra[@]}"
  else
    rm -f "$dir/cmd/kube-apiserver-2.sh"
  fi

  write_cmd kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$dir/controller.kubeconfig" \
    --controllers=service-cidr-controller \
    --leader-elect=false \
    --secure-port=0 \
    --use-service-account-credentials=false \
    --v=2

  write_kubeconfigs
  write_env

  local deadline=$(( $(now_ms) + timeout_s * 1000 ))
  launch etcd
  if ! wait_until_quiet etcd_healthy etcd "$deadline"; then
    grep -q 'address already in use' "$dir/logs/etcd.log" && return 3
    alive etcd || fail "etcd exited during startup"
    fail "etcd did not become healthy within ${timeout_s}s"
  fi
  launch kube-apiserver
  if ! wait_until_quiet apiserver_ready kube-apiserver "$deadline"; then
    grep -q 'address already in use' "$dir/logs/kube-apiserver.log" && return 3
    alive kube-apiserver || fail "kube-apiserver exited during startup"
    alive etcd || fail "etcd exited during startup"
    fail "kube-apiserver did not answer /readyz within ${timeout_s}s"
  fi
  if [ -f "$dir/cmd/kube-apiserver-2.sh" ]; then
    launch kube-apiserver-2
    if ! wait_until_quiet apiserver2_ready kube-apiserver-2 "$deadline"; then
      grep -q 'address already in use' "$dir/logs/kube-apiserver-2.log" && return 3
      alive kube-apiserver-2 || fail "kube-apiserver-2 exited during startup"
      fail "kube-apiserver-2 did not answer /readyz within ${timeout_s}s"
    fi
  fi
  return 0
}

# Like wait_until but returns 1 (instead of failing) when the component dies or time runs out.
wait_until_quiet() {
  local check=$1 component=$2 deadline=$3
  while ! $check >/dev/null 2>&1; do
    alive "$component" || return 1
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

cmd_start() {
  local controller=true owner=""
  while [ $# -gt 0 ]; do
    case $1 in
      --no-controller) controller=false ;;
      --owner) [ $# -ge 2 ] || usage; owner=$2; shift ;;
      --owner=*) owner=${1#--owner=} ;;
      *) usage ;;
    esac
    shift
  done
  if [ -n "$owner" ]; then
    [[ $owner =~ ^[0-9]+$ ]] || die "--owner needs a PID"
    kill -0 "$owner" 2>/dev/null || die "--owner $owner is not a running process"
  fi
  local t0
  t0=$(now_ms)
  cleanup_on_fail=true
  # CONTROLPLANE_BIN (a directory holding the four binaries) skips build-controlplane.sh.
  if [ -n "${CONTROLPLANE_BIN:-}" ]; then
    bin=$CONTROLPLANE_BIN
  else
    bin=$(bash "$here/build-controlplane.sh" | tail -n 1) || die "build-controlplane.sh failed"
  fi
  for b in etcd kube-apiserver kube-controller-manager kubectl; do
    [ -x "$bin/$b" ] || die "$bin/$b missing (build-controlplane.sh failed?)"
  done
  mkdir -p "$dir/logs" "$dir/pids" "$dir/cmd"
  for c in etcd kube-apiserver kube-apiserver-2 kube-controller-manager; do
    alive "$c" && die "$dir already has a running $c (stop it first)"
  done
  # Watchdog first, so that even a failed start is cleaned up when the owner goes away.
  if [ -n "$owner" ]; then
    setsid bash "$self" _watchdog "$dir" "$owner" </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/pids/watchdog"
    disown
  fi

  ADMIN_TOKEN=$(rand_token)
  VIEWER_TOKEN=$(rand_token)
  OPERATOR_TOKEN=$(rand_token)
  MIGRATOR_TOKEN=$(rand_token)
  (umask 077 && printf '%s,admin,admin-uid,"system:masters"\n%s,viewer,viewer-uid\n%s,operator,operator-uid\n%s,migrator,migrator-uid\n' \
    "$ADMIN_TOKEN" "$VIEWER_TOKEN" "$OPERATOR_TOKEN" "$MIGRATOR_TOKEN" >"$dir/tokens.csv")
  gen_pki

  local attempt rc
  for attempt in 1 2 3; do
    rm -rf "$dir/etcd"
    rc=0
    bring_up || rc=$?
    [ "$rc" -eq 0 ] && break
    log "port clash (attempt $attempt), retrying with other ports"
    kill_components kube-apiserver-2 kube-apiserver etcd
    [ "$attempt" -eq 3 ] && fail "could not bind loopback ports after 3 attempts"
  done
  log "kube-apiserver ready on https://127.0.0.1:$APISERVER_PORT after $(( $(now_ms) - t0 )) ms"
  if [ -f "$dir/cmd/kube-apiserver-2.sh" ]; then
    log "kube-apiserver-2 ready on https://127.0.0.1:$APISERVER2_PORT (kubeconfig $dir/kubeconfig-2)"
  fi
  local deadline=$(( $(now_ms) + timeout_s * 1000 ))
  wait_until "the default ServiceCIDR 'kubernetes'" "$deadline" kube-apiserver -- kc get servicecidr kubernetes
  if [ "$controller" = true ]; then
    start_controller
  fi
  log "control plane up in $(( $(now_ms) - t0 )) ms (dir $dir, controller=$controller)"
  echo "$dir/kubeconfig"
}

cmd_stop() {
  local clean=false
  while [ $# -gt 0 ]; do
    case $1 in
      --clean) clean=true ;;
      *) usage ;;
    esac
    shift
  done
  if [ -d "$dir/pids" ]; then
    kill_components kube-controller-manager kube-apiserver-2 kube-apiserver etcd watchdog
    rmdir "$dir/pids" 2>/dev/null || true
  fi
  if [ "$clean" = true ]; then
    rm -rf "$dir"
  fi
}

load_env() {
  [ -f "$dir/env" ] || die "$dir/env not found (was the control plane started there?)"
  # shellcheck disable=SC1091
  . "$dir/env"
  bin=$CONTROLPLANE_BIN
  mkdir -p "$dir/pids"
}

cmd_restart_apiserver() {
  load_env
  local t0
  t0=$(now_ms)
  kill_components kube-apiserver
  launch kube-apiserver
  wait_apiserver
  log "kube-apiserver restarted in $(( $(now_ms) - t0 )) ms"
}

# Hidden: the detached watchdog started by `start --owner PID`.
cmd_watchdog() {
  local owner=$1
  while kill -0 "$owner" 2>/dev/null; do
    # Stopped explicitly meanwhile (stop removes the pid files): nothing left to guard.
    [ -f "$dir/pids/watchdog" ] || exit 0
    sleep 0.5
  done
  exec bash "$self" stop "$dir"
}

[ $# -ge 2 ] || usage
sub=$1
if [ "$sub" = start ]; then
  dir=$(abs_dir "$2")
elif [ -d "$2" ]; then
  dir=$(cd "$2" && pwd)
elif [ "$sub" = stop ]; then
  exit 0 # nothing was ever started there
else
  die "$2: no such directory"
fi
shift 2
case $sub in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  restart-apiserver) [ $# -eq 0 ] || usage; cmd_restart_apiserver ;;
  stop-controller) [ $# -eq 0 ] || usage; load_env; kill_components kube-controller-manager ;;
  start-controller) [ $# -eq 0 ] || usage; load_env; start_controller ;;
  _watchdog) cmd_watchdog "$@" ;;
  *) usage ;;
esac
