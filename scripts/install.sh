#!/usr/bin/env bash
# Install the injector into the real node's cluster the way a user does:
# the local images loaded into the node, `kubectl apply -k manifests/` (or
# OVERLAY=manifests/overlays/exec), and nothing else: the injector makes its own
# CA, TLS Secret and caBundle (`stellar-peers certs install` is for manual setups).
#
#   scripts/install.sh up     build and load the images, install, wait until the injector is Ready
#   scripts/install.sh down   remove everything the install made (the namespace, RBAC, webhook,
#                             policies) and the mirrored ConfigMaps the injector wrote
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OVERLAY="${OVERLAY:-manifests}"
NAMESPACE=stellar-system
KUBECONFIG="$(scripts/node.sh kubeconfig)"
export KUBECONFIG
KUBECTL="$(scripts/node.sh bin)/kubectl"
k() { "$KUBECTL" "$@"; }
log() { echo "install: $*" >&2; }

up() {
  scripts/node.sh status >/dev/null || { log "the node is not up: make node-up"; exit 1; }
  mapfile -t archives < <(scripts/images.sh build)
  scripts/node.sh import "${archives[@]}"
  k apply -k "$OVERLAY" >/dev/null
  log "applied $OVERLAY"
  k rollout status -n "$NAMESPACE" deployment/stellar-peer-injector --timeout 180s
  k get pods -n "$NAMESPACE" -o wide
}

down() {
  # Cluster-scoped objects by name, then the namespace and what is in it.
  k delete -k "$OVERLAY" --ignore-not-found --wait=true >/dev/null 2>&1 || true
  k delete namespace "$NAMESPACE" --ignore-not-found --wait=true >/dev/null 2>&1 || true
  # Policy mode: the injector applied these itself, so the manifests do not name them.
  k delete mutatingadmissionpolicybinding,mutatingadmissionpolicy stellar-peer-injector \
    --ignore-not-found >/dev/null 2>&1 || true
  k delete mutatingwebhookconfiguration stellar-peer-injector --ignore-not-found >/dev/null 2>&1 || true
  # The mirrors the injector wrote into validator namespaces (it is gone, so none come back).
  k delete configmap -A -l app.kubernetes.io/name=stellar-peer-injector,app.kubernetes.io/component=peer-discovery \
    --ignore-not-found >/dev/null
  log "removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
