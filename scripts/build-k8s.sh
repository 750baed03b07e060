#!/usr/bin/env bash
# Build the control plane (kube-apiserver, kube-controller-manager, kubectl) and
# the real node's kubelet, kube-scheduler and kube-proxy from the Go module
# k8s.io/kubernetes at a pinned release, once, into a cache outside the repo.
# A warm cache makes this a no-op; a cold one takes a few minutes on 2 cores.
set -euo pipefail

# shellcheck source=../versions.env
source "$(dirname "${BASH_SOURCE[0]}")/../versions.env"
CACHE_ROOT="${STELLAR_CACHE:-$HOME/.cache/stellar-peer-injector}"
OUT="$CACHE_ROOT/k8s-$K8S_VERSION/bin"
BINARIES=(kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler kube-proxy)

have_all() {
  for b in "${BINARIES[@]}"; do [[ -x "$OUT/$b" ]] || return 1; done
}

if have_all; then
  echo "k8s $K8S_VERSION binaries cached in $OUT"
  exit 0
fi

# Go may be installed outside PATH (e.g. /usr/local/go on a fresh machine).
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then export PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null || { echo "error: Go 1.26+ is required to build kube-apiserver" >&2; exit 1; }

staging_version="v0.${K8S_VERSION#v1.}"
work="$CACHE_ROOT/k8s-$K8S_VERSION/src"
mkdir -p "$work" "$OUT"
# Two setups at once (two checkouts) share this cache: one builds, the other waits for it.
exec 9>"$CACHE_ROOT/k8s-$K8S_VERSION/build.lock"
flock 9
if have_all; then
  echo "k8s $K8S_VERSION binaries built meanwhile in $OUT"
  exit 0
fi
cd "$work"

export GOFLAGS="-mod=mod"
export GOEXPERIMENT="${GOEXPERIMENT:-nojsonv2}"
export CGO_ENABLED=0

# The wrapper module: k8s.io/kubernetes resolves its staging modules through
# ./staging replaces that are absent from the module zip, so point each one at
# its published v0.Y.Z twin.
go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
modfile="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
{
  echo "module stellar-peer-injector/k8s-build"
  echo
  echo "go $(awk '/^go /{print $2; exit}' "$modfile")"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging' "$modfile" | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
go mod tidy -e >/dev/null 2>&1 || true
for b in "${BINARIES[@]}"; do
  if [[ ! -x "$OUT/$b" ]]; then
    echo "building $b $K8S_VERSION (GOEXPERIMENT=$GOEXPERIMENT)..."
    go build -tags tools -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" -o "$OUT/$b.tmp.$$" "k8s.io/kubernetes/cmd/$b"
    mv -f "$OUT/$b.tmp.$$" "$OUT/$b"
  fi
done
echo "k8s $K8S_VERSION binaries built in $OUT"
