#!/usr/bin/env bash
# Builds the pinned upstream control plane (kube-apiserver, kube-controller-manager, kubectl, etcd)
# from the Go module proxy into a cache outside the repo, keyed by version. A second run is a no-op.
# Prints the directory holding the binaries on its last line.
#
#   build-controlplane.sh           the default Kubernetes (wrapper module controlplane/kubernetes/)
#   build-controlplane.sh MINOR     another supported minor, e.g. 1.34: wrapper module
#                                   controlplane/kubernetes-MINOR/ (the default's own minor also works)
# Every version uses the same etcd (wrapper module controlplane/etcd/). The cache directory is
# kubernetes-<k8s version>-etcd-<etcd version>, so each version is built once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -le 1 ] || { echo "usage: build-controlplane.sh [MINOR, e.g. 1.34]" >&2; exit 2; }
command -v go >/dev/null || { echo "build-controlplane: go is not on PATH" >&2; exit 1; }
k8s_module="$here/controlplane/kubernetes"
if [ $# -eq 1 ] && [ -f "$here/controlplane/kubernetes-$1/go.mod" ]; then
  k8s_module="$here/controlplane/kubernetes-$1"
fi
k8s_version=$(cd "$k8s_module" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
if [ $# -eq 1 ] && [[ $k8s_version != "v$1" && $k8s_version != "v$1".* ]]; then
  echo "build-controlplane: no wrapper module for Kubernetes $1 (have: default $k8s_version$(cd "$here/controlplane" && for d in kubernetes-*/; do [ -f "$d/go.mod" ] && printf ', %s' "${d%/}"; done))" >&2
  exit 2
fi
etcd_version=$(cd "$here/controlplane/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
cache=${KUBECTL_SERVICECIDR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-servicecidr}
out="$cache/controlplane/kubernetes-$k8s_version-etcd-$etcd_version"

if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/kubectl" ] && [ -x "$out/etcd" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$out.tmp"
start=$(date +%s)
# -trimpath and no VCS stamping keep the build independent of where the repo lives.
export GOFLAGS="-trimpath -buildvcs=false"
(
  cd "$k8s_module"
  echo "build-controlplane: building Kubernetes $k8s_version (several minutes on 2 cores)" >&2
  go build -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version" \
    -o "$out.tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
)
(
  cd "$here/controlplane/etcd"
  echo "build-controlplane: building etcd $etcd_version" >&2
  go build -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
)
rm -rf "$out"
mv "$out.tmp" "$out"
echo "build-controlplane: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
