#!/usr/bin/env bash
# Builds krew (sigs.k8s.io/krew) from the Go module proxy into the cache beside the control plane,
# once. Prints the directory holding `kubectl-krew` on its last line.
set -euo pipefail
version=v0.4.3
command -v go >/dev/null || { echo "build-krew: go is not on PATH" >&2; exit 1; }
cache=${KUBECTL_SERVICECIDR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-servicecidr}
out="$cache/krew-$version"
if [ -x "$out/kubectl-krew" ]; then
  echo "$out"
  exit 0
fi
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
echo "build-krew: building krew $version" >&2
GOFLAGS="-trimpath -buildvcs=false" GOBIN="$out.tmp" go install "sigs.k8s.io/krew/cmd/krew@$version"
# kubectl finds it as a plugin under this name, as krew's own install does.
mv "$out.tmp/krew" "$out.tmp/kubectl-krew"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
