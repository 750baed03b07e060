#!/usr/bin/env bash
# The demo without root or a node (`make demo-local`): a real control plane, the injector serving against it,
# a labeled namespace, the example validator Deployment applied unchanged, the
# injected pod spec, the peer ConfigMaps, and running validators (stellar-core
# admin stand-ins on 127.0.0.x) told about their peers.
#
#   scripts/demo-local.sh        run the demo (leaves the cluster and injector running)
#   scripts/demo-local.sh down   stop the injector (make cluster-down stops everything)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STATE="${STELLAR_CLUSTER_DIR:-$ROOT/.cluster}"
NS="${DEMO_NAMESPACE:-stellar-validators}"
PORT="${DEMO_PORT:-18443}"
METRICS_PORT="${DEMO_METRICS_PORT:-19090}"

# The observed hash is an annotation (a label value cannot hold "sha256:<hex>").
OBSERVED_COLUMNS='NAME:.metadata.name,IP:.status.podIP,READY:.status.conditions[?(@.type=="Ready")].status,OBSERVED-HASH:.metadata.annotations.stellar\.org/peers-observed-hash'

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop_injector() {
  if [[ -f "$STATE/injector.pid" ]]; then
    pid="$(cat "$STATE/injector.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/injector.pid"
  fi
}

stop_nodes() {
  if [[ -f "$STATE/standins.pid" ]]; then
    kill -TERM "$(cat "$STATE/standins.pid")" 2>/dev/null || true
    rm -f "$STATE/standins.pid"
  fi
}

if [[ "${1:-}" == "down" ]]; then stop_injector; stop_nodes; echo "demo: injector and stand-ins stopped"; exit 0; fi

say "1. Control plane (etcd, kube-apiserver, kube-controller-manager on 127.0.0.1)"
scripts/cluster.sh up
export KUBECONFIG="$STATE/kubeconfig"
KUBECTL="$(scripts/cluster.sh bin)/kubectl"
k() { "$KUBECTL" "$@"; }

say "2. The injector: stellar-peers serve --local (admission, peer watcher, reload controller)"
k create namespace stellar-system --dry-run=client -o yaml | k apply -f - >/dev/null
if [[ -f manifests/crds/stellarnode.yaml ]]; then k apply -f manifests/crds/stellarnode.yaml >/dev/null; fi
stop_injector
nohup .venv/bin/stellar-peers serve --local \
  --kubeconfig "$KUBECONFIG" --port "$PORT" --metrics-port "$METRICS_PORT" \
  --debounce-seconds 0.2 > "$STATE/injector.log" 2>&1 &
echo $! > "$STATE/injector.pid"
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$METRICS_PORT/readyz" && break
  kill -0 "$(cat "$STATE/injector.pid")" 2>/dev/null || { tail -20 "$STATE/injector.log"; exit 1; }
  sleep 0.2
done
curl -sf -o /dev/null "http://127.0.0.1:$METRICS_PORT/readyz" || { echo "injector not ready"; tail -20 "$STATE/injector.log"; exit 1; }
grep -o '"event":"serve.admission_mode"[^}]*' "$STATE/injector.log" || true
echo "metrics http://127.0.0.1:$METRICS_PORT/metrics; log $STATE/injector.log"
# admission_mode auto: on this v1.37 API server the policy, elsewhere the webhook
k get mutatingadmissionpolicy,mutatingwebhookconfiguration 2>/dev/null || k get mutatingwebhookconfiguration

say "3. Label a namespace: stellar.org/peer-injection=enabled"
k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
k label namespace "$NS" stellar.org/peer-injection=enabled --overwrite

say "4. Apply the example validator Deployment, unchanged"
k apply -n "$NS" -f manifests/examples/validator-deployment.yaml
for _ in $(seq 1 100); do
  pods="$(k get pods -n "$NS" -l stellar.org/peers-injected=true -o name 2>/dev/null | wc -l)"
  [[ "$pods" -ge 1 ]] && break; sleep 0.2
done
k get pods -n "$NS" -L stellar.org/peers-injected

say "5. What was injected into the first pod"
POD="$(k get pods -n "$NS" -o jsonpath='{.items[0].metadata.name}')"
k get pod -n "$NS" "$POD" -o jsonpath='{.metadata.annotations.stellar\.org/peers-injection-status}' | .venv/bin/python -m json.tool
k get pod -n "$NS" "$POD" -o yaml | .venv/bin/python -c '
import sys, yaml
pod = yaml.safe_load(sys.stdin)
c = next(c for c in pod["spec"]["containers"] if c["name"] == "stellar-core")
show = {"volumes": [v for v in pod["spec"]["volumes"] if v["name"] == "stellar-peers"],
        "container": {"name": c["name"], "volumeMounts": c.get("volumeMounts"), "env": c.get("env"),
                      "lifecycle": c.get("lifecycle")}}
print(yaml.safe_dump(show, sort_keys=False, width=120))'

say "6. No kubelet here: scale to 3, serve a stellar-core admin stand-in per pod on 127.0.0.x, mark them Ready"
k scale -n "$NS" deployment/stellar-validator --replicas 3 >/dev/null
for _ in $(seq 1 100); do
  [[ "$(k get pods -n "$NS" -l stellar.org/peers-injected=true -o name | wc -l)" -ge 3 ]] && break; sleep 0.2
done
PODS=($(k get pods -n "$NS" -l stellar.org/peers-injected=true -o jsonpath='{.items[*].metadata.name}'))
IPS=(); for i in "${!PODS[@]}"; do IPS+=("127.0.0.$((10 + i))"); done
stop_nodes
nohup .venv/bin/python -m scripts.standin_nodes --record "$STATE/standins.json" "${IPS[@]}" \
  > "$STATE/standins.log" 2>&1 &
echo $! > "$STATE/standins.pid"
for i in "${!PODS[@]}"; do
  .venv/bin/python -m tests.kubelet --kubeconfig "$KUBECONFIG" ready "$NS" "${PODS[$i]}" "${IPS[$i]}"
done

say "7. The peer ConfigMaps: canonical in stellar-system, mirrored into $NS"
hash=""
for _ in $(seq 1 100); do
  count="$(k get configmap stellar-peers -n stellar-system -o jsonpath='{.data.peer_count}' 2>/dev/null || true)"
  [[ "$count" == "${#PODS[@]}" ]] && break; sleep 0.2
done
k get configmap stellar-peers -n stellar-system -o jsonpath='{.data.peers\.txt}{"\n"}{.data.known_peers\.cfg}{"\n"}'
k get configmap -A -l app.kubernetes.io/name=stellar-peer-injector \
  -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,COUNT:.data.peer_count,HASH:.metadata.annotations.stellar\.org/peers-hash'

say "8. Running validators were told (stellar-core 'connect'), and each pod records the peer set it has"
hash="$(k get configmap stellar-peers -n stellar-system -o jsonpath='{.metadata.annotations.stellar\.org/peers-hash}')"
for _ in $(seq 1 100); do
  current="$(k get pods -n "$NS" -o jsonpath='{range .items[*]}{.metadata.annotations.stellar\.org/peers-observed-hash}{"\n"}{end}' | grep -c "^$hash$" || true)"
  [[ "$current" -ge "${#PODS[@]}" ]] && break; sleep 0.2
done
k get pods -n "$NS" -o custom-columns="$OBSERVED_COLUMNS"
echo "connect commands each stand-in received:"
cat "$STATE/standins.json"; echo

say "Try it yourself"
cat <<TXT
  export KUBECONFIG=$KUBECONFIG
  alias kubectl=$KUBECTL
  kubectl get pods -n $NS -o custom-columns='$OBSERVED_COLUMNS'
  kubectl get pod -n $NS $POD -o yaml
  .venv/bin/stellar-peers explain -f manifests/examples/validator-deployment.yaml
  curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep ^stellar_
  make demo-local-down   # stop the injector and the stand-ins
  make cluster-down   # stop everything
TXT
