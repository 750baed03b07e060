#!/usr/bin/env bash
# A real local Kubernetes control plane for tests and the demo: etcd,
# kube-apiserver and kube-controller-manager on 127.0.0.1, no kubelet.
# scripts/node.sh starts one with APISERVER_ADDRESS=198.18.0.1 (the real
# node's bridge), so pods reach the API server through the kubernetes Service.
#
#   scripts/cluster.sh up       start (a no-op when already up) and write .cluster/kubeconfig
#   scripts/cluster.sh down     stop exactly what `up` started and remove the state
#   scripts/cluster.sh status   say what runs
#   scripts/cluster.sh restart-apiserver   stop and start kube-apiserver only (fault tests)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${STELLAR_CLUSTER_DIR:-$ROOT/.cluster}"
# shellcheck source=../versions.env
source "$ROOT/versions.env"
CACHE_ROOT="${STELLAR_CACHE:-$HOME/.cache/stellar-peer-injector}"
BIN="${K8S_BIN:-$CACHE_ROOT/k8s-$K8S_VERSION/bin}"
ETCD_PORT="${ETCD_PORT:-12379}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-12380}"
APISERVER_PORT="${APISERVER_PORT:-16443}"
KCM_PORT="${KCM_PORT:-10357}"
# Where kube-apiserver listens and what it advertises as the kubernetes
# Service's endpoint: loopback, or the node's bridge address.
APISERVER_ADDRESS="${APISERVER_ADDRESS:-127.0.0.1}"
# etcd's data lives in memory: the cluster is disposable and fsync on disk is slow.
ETCD_DATA="${ETCD_DATA:-/dev/shm/stellar-peer-injector-etcd-$(echo -n "$STATE" | md5sum | cut -c1-8)}"

log() { echo "cluster: $*" >&2; }

pid_alive() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

readyz() {
  curl -sf --max-time 2 --cacert "$STATE/pki/ca.crt" \
    --cert "$STATE/pki/admin.crt" --key "$STATE/pki/admin.key" \
    "https://$APISERVER_ADDRESS:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do
    if ((SECONDS >= deadline)); then log "timed out waiting for $what"; return 1; fi
    sleep 0.2
  done
}

make_pki() {
  local pki="$STATE/pki"
  [[ -f "$pki/admin.crt" ]] && return 0
  mkdir -p "$pki"
  ( cd "$pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj "/CN=stellar-local-ca" -keyout ca.key -out ca.crt 2>/dev/null
    cat > apiserver.ext <<EXT
subjectAltName=IP:127.0.0.1,IP:$APISERVER_ADDRESS,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EXT
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=kube-apiserver" \
      -keyout apiserver.key -out apiserver.csr 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    echo "extendedKeyUsage=clientAuth" > client.ext
    # system:masters: the admin identity for tests, the demo and the controller manager.
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/O=system:masters/CN=stellar-admin" -keyout admin.key -out admin.csr 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key )
}

write_kubeconfig() {
  local pki="$STATE/pki"
  cat > "$STATE/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://$APISERVER_ADDRESS:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 < "$pki/admin.crt")
    client-key-data: $(base64 -w0 < "$pki/admin.key")
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC
  chmod 600 "$STATE/kubeconfig"
}

start_etcd() {
  pid_alive etcd && return 0
  command -v etcd >/dev/null || { log "etcd not found: run scripts/setup.sh (apt-get install etcd-server)"; exit 1; }
  mkdir -p "$ETCD_DATA"
  ETCD_UNSUPPORTED_ARCH="" nohup etcd --name local --data-dir "$ETCD_DATA" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --quota-backend-bytes 4294967296 --snapshot-count 50000 \
    > "$STATE/etcd.log" 2>&1 &
  echo $! > "$STATE/etcd.pid"
  wait_for 30 etcd curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  pid_alive kube-apiserver && return 0
  local pki="$STATE/pki" reconciler=none
  # Off loopback, pods reach the API server: the kubernetes Service needs its endpoint.
  [[ "$APISERVER_ADDRESS" == 127.0.0.1 ]] || reconciler=lease
  env -u HTTPS_PROXY -u HTTP_PROXY -u https_proxy -u http_proxy \
  nohup "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$APISERVER_ADDRESS" --advertise-address "$APISERVER_ADDRESS" --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --authorization-mode RBAC \
    --enable-admission-plugins MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type "$reconciler" \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
    --allow-privileged=true \
    --cert-dir "$STATE/apiserver-certs" \
    --profiling=false \
    --watch-cache=true \
    --max-requests-inflight 1000 --max-mutating-requests-inflight 500 \
    --v=1 \
    > "$STATE/kube-apiserver.log" 2>&1 &
  echo $! > "$STATE/kube-apiserver.pid"
  wait_for 90 kube-apiserver readyz || { tail -20 "$STATE/kube-apiserver.log" >&2; exit 1; }
}

start_controller_manager() {
  pid_alive kube-controller-manager && return 0
  local pki="$STATE/pki"
  nohup "$BIN/kube-controller-manager" \
    --kubeconfig "$STATE/kubeconfig" \
    --authentication-kubeconfig "$STATE/kubeconfig" \
    --authorization-kubeconfig "$STATE/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
    --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=false \
    --leader-elect=false \
    --controllers '*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ttl' \
    --concurrent-deployment-syncs 10 --concurrent-replicaset-syncs 10 \
    --kube-api-qps 200 --kube-api-burst 400 \
    --v=1 \
    > "$STATE/kube-controller-manager.log" 2>&1 &
  echo $! > "$STATE/kube-controller-manager.pid"
  # Ready once the default ServiceAccount exists: without it pod creates are refused.
  wait_for 60 "the default ServiceAccount" default_service_account
}

default_service_account() {
  "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" get serviceaccount default -n default -o name >/dev/null 2>&1
}

stop() {  # stop NAME: TERM, wait, then KILL; only the PID we recorded
  local name=$1 pid
  [[ -f "$STATE/$name.pid" ]] || return 0
  pid="$(cat "$STATE/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/$name.pid"
}

up() {
  mkdir -p "$STATE"
  if [[ ! -x "$BIN/kube-apiserver" || ! -x "$BIN/kube-controller-manager" || ! -x "$BIN/kubectl" ]]; then
    "$ROOT/scripts/build-k8s.sh"
  fi
  make_pki
  write_kubeconfig
  start_etcd
  start_apiserver
  start_controller_manager
  log "up: kube-apiserver $K8S_VERSION at https://$APISERVER_ADDRESS:$APISERVER_PORT"
  log "export KUBECONFIG=$STATE/kubeconfig; kubectl at $BIN/kubectl"
}

down() {
  # Controller manager and API server first, etcd last, or the API server hangs in shutdown.
  stop kube-controller-manager
  stop kube-apiserver
  stop etcd
  rm -rf "$STATE" "$ETCD_DATA"
  log "down"
}

status() {
  local rc=0
  for name in etcd kube-apiserver kube-controller-manager; do
    if pid_alive "$name"; then echo "$name: running (pid $(cat "$STATE/$name.pid"))"
    else echo "$name: stopped"; rc=1; fi
  done
  if readyz; then echo "kube-apiserver /readyz: ok"; else echo "kube-apiserver /readyz: not ready"; rc=1; fi
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  restart-apiserver) stop kube-apiserver; start_apiserver ;;
  stop-apiserver) stop kube-apiserver ;;
  start-apiserver) start_apiserver ;;
  kubeconfig) echo "$STATE/kubeconfig" ;;
  bin) echo "$BIN" ;;
  *) echo "usage: $0 up|down|status|restart-apiserver|kubeconfig|bin" >&2; exit 2 ;;
esac
