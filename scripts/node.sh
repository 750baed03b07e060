#!/usr/bin/env bash
# A real node for the local cluster: its own control plane (scripts/cluster.sh
# with the API server on the node's bridge), containerd + runc, kubelet,
# kube-scheduler and kube-proxy, pods on 198.18.0.0/24 behind the bridge
# stellar0 (198.18.0.1). Needs root (bridge, iptables, mounts).
#
#   scripts/node.sh up       start everything (a no-op for what already runs)
#   scripts/node.sh down     stop what `up` started, by PID; remove pods, the bridge, the rules, the state
#   scripts/node.sh status   say what runs
#   scripts/node.sh import FILE...   load image archives (docker-archive tar) into the node's containerd
#   scripts/node.sh kubeconfig | bin | env
#
# The node tier of the tests and `make demo` use it; the fake-kubelet tests use
# scripts/cluster.sh's other control plane, so the two never share pods.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export STELLAR_CLUSTER_DIR="${NODE_CLUSTER_DIR:-$ROOT/.cluster-node}"
STATE="$STELLAR_CLUSTER_DIR"
# Ports of the node's own control plane: apart from scripts/cluster.sh's defaults.
export ETCD_PORT="${NODE_ETCD_PORT:-13379}" ETCD_PEER_PORT="${NODE_ETCD_PEER_PORT:-13380}"
export APISERVER_PORT="${NODE_APISERVER_PORT:-17443}" KCM_PORT="${NODE_KCM_PORT:-11357}"
SCHEDULER_PORT="${NODE_SCHEDULER_PORT:-11259}"
BRIDGE="${NODE_BRIDGE:-stellar0}"
NODE_IP="198.18.0.1"
POD_CIDR="198.18.0.0/24"
NODE_NAME="${NODE_NAME:-stellar-node}"
export APISERVER_ADDRESS="$NODE_IP"
# The sandbox image is built locally (scripts/images.sh) under this name.
PAUSE_IMAGE="registry.k8s.io/pause:3.10"
CNI_BIN="${CNI_BIN:-/usr/lib/cni}"
SOCK="$STATE/containerd/containerd.sock"

K8S_BIN="$("$ROOT/scripts/cluster.sh" bin)"
KUBECONFIG_FILE="$STATE/kubeconfig"

log() { echo "node: $*" >&2; }
kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
ctr_() { ctr --address "$SOCK" -n k8s.io "$@"; }
pid_alive() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do
    if ((SECONDS >= deadline)); then log "timed out waiting for $what"; return 1; fi
    sleep 0.5
  done
}

require() {
  [[ $(id -u) -eq 0 ]] || { log "the real node needs root (bridge, iptables, mounts)"; exit 1; }
  local missing=()
  for tool in containerd runc ctr ip iptables; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [[ -x "$CNI_BIN/bridge" && -x "$CNI_BIN/host-local" && -x "$CNI_BIN/loopback" ]] || missing+=("CNI plugins in $CNI_BIN")
  for b in kubelet kube-scheduler kube-proxy; do [[ -x "$K8S_BIN/$b" ]] || missing+=("$K8S_BIN/$b"); done
  if ((${#missing[@]})); then log "missing: ${missing[*]}; run scripts/setup.sh"; exit 1; fi
}

start_bridge() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Pods reach ClusterIPs through the host: routed, so forwarding on.
  sysctl -qw net.ipv4.ip_forward=1
}

write_cni() {
  mkdir -p "$STATE/cni/net.d" "$STATE/cni/ipam"
  # A default route or pods cannot reach any ClusterIP ("Network is unreachable").
  cat > "$STATE/cni/net.d/10-stellar.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "stellar",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "198.18.0.10", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
JSON
}

start_containerd() {
  pid_alive containerd && return 0
  mkdir -p "$STATE/containerd"
  # restrict_oom_score_adj: this machine refuses to lower oom_score_adj, and
  # without it every sandbox fails to start.
  cat > "$STATE/containerd/config.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$STATE/cni/net.d"
TOML
  nohup containerd --config "$STATE/containerd/config.toml" > "$STATE/containerd.log" 2>&1 &
  echo $! > "$STATE/containerd.pid"
  wait_for 30 containerd ctr_ version >/dev/null
}

start_kubelet() {
  pid_alive kubelet && return 0
  mkdir -p "$STATE/kubelet"
  # Pods resolve nothing: no cluster DNS here, and a nameserver that answers
  # at once (nothing listens on the pod's own loopback) beats one that hangs.
  echo "nameserver 127.0.0.1" > "$STATE/resolv.conf"
  cat > "$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$SOCK
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
resolvConf: $STATE/resolv.conf
# Mounted ConfigMaps are refreshed on each pod sync: every 10 s, not every minute.
syncFrequency: 10s
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
YAML
  nohup "$K8S_BIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$KUBECONFIG_FILE" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --root-dir "$STATE/kubelet" \
    --v=1 > "$STATE/kubelet.log" 2>&1 &
  echo $! > "$STATE/kubelet.pid"
}

start_proxy() {
  pid_alive kube-proxy && return 0
  cat > "$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG_FILE}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  nohup "$K8S_BIN/kube-proxy" --config "$STATE/kube-proxy.yaml" --v=1 > "$STATE/kube-proxy.log" 2>&1 &
  echo $! > "$STATE/kube-proxy.pid"
}

start_scheduler() {
  pid_alive kube-scheduler && return 0
  nohup "$K8S_BIN/kube-scheduler" --kubeconfig "$KUBECONFIG_FILE" \
    --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false \
    --v=1 > "$STATE/kube-scheduler.log" 2>&1 &
  echo $! > "$STATE/kube-scheduler.pid"
}

node_ready() {
  [[ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

kubernetes_endpoint() {
  [[ -n "$(kubectl get endpointslice -n default -l kubernetes.io/service-name=kubernetes -o jsonpath='{.items[*].endpoints[*].addresses[*]}' 2>/dev/null)" ]]
}

up() {
  require
  mkdir -p "$STATE"
  start_bridge
  write_cni
  "$ROOT/scripts/cluster.sh" up
  start_containerd
  start_scheduler
  start_proxy
  start_kubelet
  wait_for 120 "node $NODE_NAME Ready" node_ready || { tail -20 "$STATE/kubelet.log" >&2; exit 1; }
  # The node lifecycle controller is off in this control plane: lift the
  # registration taint ourselves once the node is Ready.
  kubectl taint node "$NODE_NAME" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
  wait_for 60 "the kubernetes Service endpoint" kubernetes_endpoint
  log "up: node $NODE_NAME ($NODE_IP), pods on $POD_CIDR, API server https://$NODE_IP:$APISERVER_PORT"
  log "export KUBECONFIG=$KUBECONFIG_FILE; kubectl at $K8S_BIN/kubectl"
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

remove_kube_chains() {  # what kube-proxy --cleanup leaves: the kubelet's own KUBE-* chains
  local ipt table rule chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle; do
      { "$ipt" -t "$table" -S 2>/dev/null || true; } \
        | { grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-' || true; } \
        | while read -r rule; do eval "$ipt -t $table ${rule/-A/-D}" 2>/dev/null || true; done
      for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do
        "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do
        "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

remove_containers() {
  pid_alive containerd || return 0
  local ids
  # Tasks first (their shims go with them), then containers and sandboxes' network.
  for id in $(ctr_ tasks list -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  sleep 1
  for id in $(ctr_ tasks list -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
  ids="$(ctr_ containers list -q 2>/dev/null || true)"
  [[ -z "$ids" ]] || ctr_ containers delete $ids >/dev/null 2>&1 || true
}

down() {
  stop kubelet
  remove_containers
  stop containerd
  stop kube-scheduler
  stop kube-proxy
  # kube-proxy's chains and rules, then anything else that still runs from the state folder.
  if [[ -x "$K8S_BIN/kube-proxy" ]]; then "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  remove_kube_chains
  # Shims of containers containerd no longer knew of (`-id ID` comes before `-address`):
  # each one's container init first (it takes its pod's processes along), then the shim.
  for shim in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $SOCK" || true); do
    pkill -KILL -P "$shim" 2>/dev/null || true
    kill -KILL "$shim" 2>/dev/null || true
  done
  # Pod network namespaces and the volumes the kubelet mounted (tokens are tmpfs).
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns delete "$ns" 2>/dev/null || true; done
  if [[ -d "$STATE" ]]; then
    { grep -F " $STATE/" /proc/mounts || true; } | awk '{print $2}' | sort -r \
      | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  "$ROOT/scripts/cluster.sh" down
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
  for veth in $(ip -o link show type veth 2>/dev/null | awk -F': ' '/master '"$BRIDGE"' /{sub(/@.*/, "", $2); print $2}'); do
    ip link delete "$veth" 2>/dev/null || true
  done
  rm -rf "$STATE"
  log "down"
}

status() {
  local rc=0
  "$ROOT/scripts/cluster.sh" status || rc=1
  for name in containerd kubelet kube-proxy kube-scheduler; do
    if pid_alive "$name"; then echo "$name: running (pid $(cat "$STATE/$name.pid"))"
    else echo "$name: stopped"; rc=1; fi
  done
  if node_ready; then echo "node $NODE_NAME: Ready"; else echo "node $NODE_NAME: not Ready"; rc=1; fi
  return $rc
}

import_images() {
  pid_alive containerd || { log "containerd is not running: scripts/node.sh up"; exit 1; }
  for file in "$@"; do ctr_ images import "$file" >/dev/null; done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  import) shift; import_images "$@" ;;
  kubeconfig) echo "$KUBECONFIG_FILE" ;;
  bin) echo "$K8S_BIN" ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_FILE PATH=$K8S_BIN:\$PATH" ;;
  *) echo "usage: $0 up|down|status|import FILE...|kubeconfig|bin|env" >&2; exit 2 ;;
esac
