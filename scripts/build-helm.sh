#!/usr/bin/env bash
# Build helm from the Go module helm.sh/helm/v3 at a pinned release, once, into
# a cache outside the repo (next to the k8s binaries). A warm cache is a no-op.
# v3.22.0 is pinned because it is the first v3 release built on client-go
# v0.37, the same minor as the kube-apiserver the tests run (k8s v1.37.2), so
# `helm template` and `helm lint` assume a 1.37 cluster by default.
set -euo pipefail

# shellcheck source=../versions.env
source "$(dirname "${BASH_SOURCE[0]}")/../versions.env"
CACHE_ROOT="${STELLAR_CACHE:-$HOME/.cache/stellar-peer-injector}"
OUT="$CACHE_ROOT/helm-$HELM_VERSION/bin"

# `build-helm.sh bin` prints where helm is (or will be), for tests and docs.
if [[ "${1:-}" == "bin" ]]; then echo "$OUT"; exit 0; fi

if [[ -x "$OUT/helm" ]]; then
  echo "helm $HELM_VERSION cached in $OUT"
  exit 0
fi

# Go may be installed outside PATH (e.g. /usr/local/go on a fresh machine).
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then export PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null || { echo "error: Go 1.26+ is required to build helm" >&2; exit 1; }

work="$CACHE_ROOT/helm-$HELM_VERSION/src"
mkdir -p "$work" "$OUT"
# Two setups at once (two checkouts) share this cache: one builds, the other waits for it.
exec 9>"$CACHE_ROOT/helm-$HELM_VERSION/build.lock"
flock 9
if [[ -x "$OUT/helm" ]]; then
  echo "helm $HELM_VERSION built meanwhile in $OUT"
  exit 0
fi
cd "$work"

export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

# The wrapper module: requiring helm at the pinned version makes its go.mod the
# minimum for every dependency, so the build resolves what that release tested.
go mod download -json "helm.sh/helm/v3@$HELM_VERSION" >/dev/null
modfile="$(go env GOMODCACHE)/cache/download/helm.sh/helm/v3/@v/$HELM_VERSION.mod"
{
  echo "module stellar-peer-injector/helm-build"
  echo
  echo "go $(awk '/^go /{print $2; exit}' "$modfile")"
  echo
  echo "require helm.sh/helm/v3 $HELM_VERSION"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "helm.sh/helm/v3/cmd/helm"
GO
go mod tidy -e >/dev/null 2>&1 || true

# The same version stamps helm's own Makefile sets: its version string and the
# Kubernetes version (client-go v0.Y -> 1.Y) that lint and template assume.
client_go="$(go list -f '{{.Version}}' -m k8s.io/client-go)"
k8s_minor="$(echo "$client_go" | cut -d. -f2)"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
done
echo "building helm $HELM_VERSION (client-go $client_go)..."
go build -tags tools -trimpath -ldflags "$ldflags" -o "$OUT/helm.tmp.$$" helm.sh/helm/v3/cmd/helm
mv -f "$OUT/helm.tmp.$$" "$OUT/helm"
echo "helm $HELM_VERSION built in $OUT"
