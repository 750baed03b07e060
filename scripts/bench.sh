#!/usr/bin/env bash
# Benchmarks (issue 6): each prints its figures beside a baseline measured in
# the same run, then one table sums them up.
#
#   scripts/bench.sh            the full run (about 10 minutes)
#   scripts/bench.sh --quick    a smoke check (about 2 minutes)
#
# Installs what it needs (Debian wrk and nginx, py-spy from the `bench` extra),
# starts a private control plane on its own ports and state folder (the shared
# one that tests use is left alone) and stops it at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=.venv/bin/python

QUICK=()
case "${1:-}" in
  --quick) QUICK=(--quick) ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

log() { echo "bench: $*" >&2; }

install_tools() {
  local need=()
  command -v wrk >/dev/null || need+=(wrk)
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
  ((${#need[@]})) || return 0
  log "installing ${need[*]}"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  # Keep the package from starting its own nginx (on port 80, all interfaces):
  # only the benchmark's nginx on 127.0.0.1 may run.
  local policy=/usr/sbin/policy-rc.d added=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"; added=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  ((added)) && $sudo rm -f "$policy"
  return 0
}

install_tools
if [[ ! -x .venv/bin/py-spy ]]; then
  log "installing the bench extra (py-spy)"
  .venv/bin/pip install -q -e '.[bench]'
fi

# The private control plane: its own state folder and free ports, apart from the shared one.
STATE="$(mktemp -d /tmp/stellar-bench-cluster.XXXXXX)"
read -r ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT < <("$PY" -c '
from tests.bench.cluster import PORT_NAMES, private_environment
env = private_environment("")
print(*(env[name] for name in PORT_NAMES))')
cluster() {
  STELLAR_CLUSTER_DIR="$STATE" ETCD_PORT=$ETCD_PORT ETCD_PEER_PORT=$ETCD_PEER_PORT \
    APISERVER_PORT=$APISERVER_PORT KCM_PORT=$KCM_PORT scripts/cluster.sh "$@"
}
RESULTS="$(mktemp /tmp/stellar-bench-results.XXXXXX)"
cleanup() {
  cluster down >/dev/null 2>&1 || true
  rm -rf "$STATE" "$RESULTS"
}
trap cleanup EXIT
cluster up
export BENCH_KUBECONFIG="$STATE/kubeconfig" BENCH_RESULTS="$RESULTS"

started=$SECONDS
status=0
for name in mutation admission apiserver convergence reload; do
  began=$SECONDS
  if ! "$PY" -m "tests.bench.bench_$name" "${QUICK[@]}"; then
    log "bench_$name failed"
    "$PY" -m tests.bench.report "$RESULTS" --not-run "bench_$name" "it failed; see its output above"
    status=1
  fi
  echo "  (bench_$name: $((SECONDS - began)) s)"
  echo
done

echo "== summary ($(nproc) cores; ran $((SECONDS - started)) s; $(date -u +%Y-%m-%dT%H:%MZ))"
"$PY" -m tests.bench.report "$RESULTS"
exit $status
