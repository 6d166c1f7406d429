#!/usr/bin/env bash
# The plugin doing its main job on a throwaway local control plane: a realistic scene, then
# status, orphans, doctor, explain and a safe delete --wait. Everything is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

cargo build --quiet --bins
dir=$(mktemp -d)
trap 'bash scripts/controlplane.sh stop "$dir" --clean >/dev/null 2>&1 || true' EXIT
bash scripts/controlplane.sh start "$dir" --owner $$ >/dev/null
# shellcheck disable=SC1091
source "$dir/env"
bin=$(mktemp -d)
ln -s "$PWD/target/debug/kubectl-servicecidr" "$bin/kubectl-servicecidr"
ln -s "$PWD/target/debug/kubectl_complete-servicecidr" "$bin/kubectl_complete-servicecidr"
export PATH="$bin:$CONTROLPLANE_BIN:$PATH"

echo "Scene: the default range, two more (one dual-stack), Services spread over them, and a range"
echo "'legacy' whose finalizer someone stripped by hand while two Services still had IPs in it."
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: blue}
spec: {cidrs: ["10.100.0.0/24"]}
---
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: green}
spec: {cidrs: ["10.101.0.0/24", "fd00:101::/112"]}
YAML
kubectl wait --for=condition=Ready servicecidr/blue servicecidr/green >/dev/null
kubectl create namespace shop >/dev/null
# Dynamic ClusterIPs land in any usable range, in a random order for each Service (kubectl
# servicecidr explain says so): made before 'legacy' and 'spare' exist, they stay out of them.
for i in 1 2 3; do kubectl -n shop create service clusterip "web-$i" --tcp=80 >/dev/null; done
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: legacy}
spec: {cidrs: ["10.102.0.0/24"]}
---
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: spare}
spec: {cidrs: ["10.103.0.0/28"]}
YAML
kubectl wait --for=condition=Ready servicecidr/legacy servicecidr/spare >/dev/null
for i in 1 2 3 4; do kubectl -n shop create service clusterip "api-$i" --tcp=80 --clusterip="10.100.0.$((10 + i))" >/dev/null; done
kubectl -n shop create service clusterip cart --tcp=80 --clusterip=10.101.0.20 >/dev/null
kubectl -n shop create service clusterip old-1 --tcp=80 --clusterip=10.102.0.7 >/dev/null
kubectl -n shop create service clusterip old-2 --tcp=80 --clusterip=10.102.0.8 >/dev/null
kubectl delete servicecidr legacy --wait=false >/dev/null
kubectl patch servicecidr legacy --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null
kubectl wait --for=delete servicecidr/legacy >/dev/null

say kubectl get servicecidrs
kubectl get servicecidrs
say kubectl servicecidr status
kubectl servicecidr status
say kubectl servicecidr orphans
kubectl servicecidr orphans || echo "(exit $?: findings)"
say kubectl servicecidr doctor
kubectl servicecidr doctor || echo "(exit $?: findings)"
say kubectl servicecidr explain 10.102.0.7
kubectl servicecidr explain 10.102.0.7
say kubectl servicecidr explain spare
kubectl servicecidr explain spare
say kubectl servicecidr delete blue
kubectl servicecidr delete blue || echo "(exit $?: refused, nothing was deleted)"
say kubectl servicecidr delete spare --wait
kubectl servicecidr delete spare --wait
say "kubectl servicecidr orphans --suggest-range | kubectl apply -f -"
# orphans exits 3 while it finds something; the manifest on stdout is what matters here.
{ kubectl servicecidr orphans --suggest-range || true; } | kubectl apply -f -
say kubectl servicecidr orphans
kubectl servicecidr orphans
