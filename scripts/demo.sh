#!/usr/bin/env bash
# The main job, on a real node: the injector installed from manifests/ (its
# image, its ServiceAccount, its RBAC), a labeled namespace, the example
# validator Deployment applied unchanged, what was injected, real validator
# pods (the stellar-core stand-in image) told about their peers, and the peer
# ConfigMaps. Needs root; leaves everything running.
#
#   scripts/demo.sh        run the demo
#   scripts/demo.sh down   remove the demo namespace and the injector (make node-down stops the node)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NS="${DEMO_NAMESPACE:-stellar-validators}"
# The example keeps its admin port on 127.0.0.1 (PUBLIC_HTTP_PORT=false), so running
# validators are told of new peers inside their container, through pods/exec.
export OVERLAY="${OVERLAY:-manifests/overlays/exec}"
INJECTED='stellar.org/peers-injected=true'
OBSERVED_COLUMNS='NAME:.metadata.name,IP:.status.podIP,STATUS:.status.phase,INJECTED:.metadata.labels.stellar\.org/peers-injected'

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. A real node: control plane, containerd, kubelet, kube-proxy, scheduler (scripts/node.sh up)"
scripts/node.sh up
export KUBECONFIG="$(scripts/node.sh kubeconfig)"
KUBECTL="$(scripts/node.sh bin)/kubectl"
k() { "$KUBECTL" "$@"; }

if [[ "${1:-}" == "down" ]]; then
  k delete namespace "$NS" --ignore-not-found >/dev/null
  scripts/install.sh down
  echo "demo: removed; make node-down stops the node"
  exit 0
fi
k get nodes -o wide

say "2. Install the injector as a user does: images, kubectl apply -k $OVERLAY (it makes its own certificate)"
scripts/install.sh up

say "3. Label a namespace: stellar.org/peer-injection=enabled"
k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
k label namespace "$NS" stellar.org/peer-injection=enabled --overwrite
# Each validator's own seed, a real one (stellar-core checks it: "invalid seed"), made
# as `stellar-core gen-seed` makes one, and kept if a previous run made it already.
seed_secret() {
  k get secret "$1" -n "$NS" >/dev/null 2>&1 && return 0
  local seed; seed="$(.venv/bin/python -m tests.standin gen-seed | sed -n 's/^Secret seed: //p')"
  k create secret generic "$1" -n "$NS" --from-literal=seed="$seed" >/dev/null
}
seed_secret validator-seed

say "4. Apply the example validator Deployment, unchanged"
k apply -n "$NS" -f manifests/examples/validator-deployment.yaml
k rollout status -n "$NS" deployment/stellar-validator --timeout 180s
k get pods -n "$NS" -o custom-columns="$OBSERVED_COLUMNS"

say "5. What was injected into the pod"
POD="$(k get pods -n "$NS" -l app=stellar-validator -o jsonpath='{.items[0].metadata.name}')"
k get pod -n "$NS" "$POD" -o jsonpath='{.metadata.annotations.stellar\.org/peers-injection-status}' | .venv/bin/python -m json.tool
k get pod -n "$NS" "$POD" -o yaml | .venv/bin/python -c '
import sys, yaml
pod = yaml.safe_load(sys.stdin)
c = next(c for c in pod["spec"]["containers"] if c["name"] == "stellar-core")
show = {"volumes": [v for v in pod["spec"]["volumes"] if v["name"] == "stellar-peers"],
        "container": {"name": c["name"], "volumeMounts": c.get("volumeMounts"), "env": c.get("env"),
                      "lifecycle": c.get("lifecycle")}}
print(yaml.safe_dump(show, sort_keys=False, width=120))'

say "6. Two more validators, as operators run them: copies of the example, each its own name and seed"
# Not a scaled Deployment: its replicas would share one NODE_SEED, and stellar-core never
# authenticates a peer with its own node ID. This 2-core node fits three only with small requests.
k set resources -n "$NS" deployment/stellar-validator -c stellar-core --requests=cpu=10m,memory=32Mi >/dev/null
for s in b c; do
  seed_secret "validator-seed-$s"
done
.venv/bin/python -m scripts.validator_copies --requests cpu=10m,memory=32Mi b c \
  < manifests/examples/validator-deployment.yaml | k apply -n "$NS" -f -
for d in stellar-validator stellar-validator-b stellar-validator-c; do
  k rollout status -n "$NS" "deployment/$d" --timeout 240s
done
k get pods -n "$NS" -l "$INJECTED" -o custom-columns="$OBSERVED_COLUMNS"

POD="$(k get pods -n "$NS" -l app=stellar-validator -o jsonpath='{.items[0].metadata.name}')"

say "7. The peer ConfigMaps: canonical in stellar-system, mirrored into $NS"
want="$(k get pods -n "$NS" -l "$INJECTED" --field-selector status.phase=Running -o name | wc -l)"
for _ in $(seq 1 240); do
  count="$(k get configmap stellar-peers -n "$NS" -o jsonpath='{.data.peer_count}' 2>/dev/null || true)"
  [[ "$count" == "$want" ]] && break; sleep 0.5
done
k get configmap stellar-peers -n stellar-system -o jsonpath='{.data.peers\.txt}{"\n"}{.data.known_peers\.cfg}{"\n"}'
k get configmap -A -l app.kubernetes.io/name=stellar-peer-injector \
  -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,COUNT:.data.peer_count,HASH:.metadata.annotations.stellar\.org/peers-hash'

say "8. Inside the validators: the mounted peers file, and the admin calls made in the container (postStart hook, reload controller)"
# The kubelet refreshes a mounted ConfigMap within about a minute, and a starting node
# answers its admin port only once booted: wait for both, up to two minutes a pod.
canonical="$(k get configmap stellar-peers -n "$NS" -o jsonpath='{.data.peers\.txt}')"
for pod in $(k get pods -n "$NS" -l "$INJECTED" -o jsonpath='{.items[*].metadata.name}'); do
  for _ in $(seq 1 120); do
    mounted="$(k exec -n "$NS" "$pod" -c stellar-core -- cat /etc/stellar/peers/peers.txt 2>/dev/null || true)"
    calls="$(k logs -n "$NS" "$pod" -c stellar-core 2>/dev/null | grep 'Http INFO' || true)"
    [[ "$mounted" == "$canonical" && -n "$calls" ]] && break; sleep 1
  done
  echo "--- $pod: /etc/stellar/peers/peers.txt"
  echo "$mounted"
  echo "--- $pod: admin requests in its log"
  echo "${calls:-(none yet)}" | tail -5
done

say "9. Really connected: the peers each node authenticated (stellar-core http-command peers, in the pod)"
# `Connect to:` in the log only means "asked"; the `peers` answer says who completed the handshake.
others="$(( want - 1 ))"
for pod in $(k get pods -n "$NS" -l "$INJECTED" -o jsonpath='{.items[*].metadata.name}'); do
  for _ in $(seq 1 120); do
    authenticated="$(k exec -n "$NS" "$pod" -c stellar-core -- \
        stellar-core http-command peers --conf /var/lib/stellar/stellar-core.cfg 2>/dev/null \
      | .venv/bin/python -c '
import sys
from webhook.core import admin_protocol
answer = admin_protocol.parse_http_command_output(sys.stdin.read())
print(" ".join(sorted(admin_protocol.authenticated_addresses(answer.body))))' \
      2>/dev/null || true)"
    [[ "$(wc -w <<<"$authenticated")" -ge "$others" ]] && break; sleep 1
  done
  echo "$pod: ${authenticated:-(none yet)}"
done

say "Try it yourself"
cat <<TXT
  export KUBECONFIG=$KUBECONFIG
  alias kubectl=$KUBECTL
  kubectl get pods -n $NS -o wide
  kubectl get pod -n $NS $POD -o yaml
  kubectl logs -n stellar-system deployment/stellar-peer-injector
  .venv/bin/stellar-peers explain -f manifests/examples/validator-deployment.yaml
  make demo-down      # remove the demo namespace and the injector
  make node-down      # stop the node and its control plane
TXT
