"""The public names of DESIGN.md: labels, annotations, keys, env vars, paths.

Users put these in manifests and scripts, so they live in one place and change
only through an issue.
"""

from typing import Final

GROUP: Final = "stellar.org"

# Namespaces
ENABLE_LABEL: Final = "stellar.org/peer-injection"
ENABLE_VALUE: Final = "enabled"
DEFAULT_NAMESPACE_SELECTOR: Final = f"{ENABLE_LABEL}={ENABLE_VALUE}"
SYSTEM_NAMESPACE: Final = "stellar-system"

# Pods
NODE_TYPE_LABEL: Final = "stellar.org/node-type"
INJECTED_LABEL: Final = "stellar.org/peers-injected"
INJECT_ANNOTATION: Final = "stellar.org/inject-peers"
CONTAINER_ANNOTATION: Final = "stellar.org/inject-container"
PEER_PORT_ANNOTATION: Final = "stellar.org/peer-port"
STATUS_ANNOTATION: Final = "stellar.org/peers-injection-status"
RELOAD_MODE_ANNOTATION: Final = "stellar.org/reload-mode"
OBSERVED_HASH_ANNOTATION: Final = "stellar.org/peers-observed-hash"
PEERS_HASH_ANNOTATION: Final = "stellar.org/peers-hash"
CONNECTION_STATUS_ANNOTATION: Final = "stellar.org/peers-connection-status"
# The node's limits, as its stellar-core.cfg sets them (the admin port does not say)
TARGET_PEER_CONNECTIONS_ANNOTATION: Final = "stellar.org/target-peer-connections"
PREFERRED_PEERS_ONLY_ANNOTATION: Final = "stellar.org/preferred-peers-only"

# The ConfigMap
CONFIGMAP_NAME: Final = "stellar-peers"
KEY_JSON: Final = "peers.json"
KEY_TXT: Final = "peers.txt"
KEY_CSV: Final = "peers.csv"
KEY_COUNT: Final = "peer_count"
KEY_KNOWN_PEERS: Final = "known_peers.cfg"
OWNER_LABELS: Final = {
    "app.kubernetes.io/name": "stellar-peer-injector",
    "app.kubernetes.io/component": "peer-discovery",
}
CONFIGMAP_MAX_BYTES: Final = 1024 * 1024
# The longest wait the injected postStart hook accepts (its shell checks it too).
HOOK_MAX_TIMEOUT_SECONDS: Final = 24 * 3600

# What is injected
VOLUME_NAME: Final = "stellar-peers"
MOUNT_PATH: Final = "/etc/stellar/peers"
ENV_PEERS_FILE: Final = "STELLAR_PEERS_FILE"
ENV_PEERS: Final = "STELLAR_PEERS"
ENV_PEER_COUNT: Final = "STELLAR_PEER_COUNT"
ENV_POD_IP: Final = "STELLAR_POD_IP"
PEERS_FILE: Final = f"{MOUNT_PATH}/{KEY_TXT}"
# The config file `stellar-core http-command --conf` reads, when the pod sets it
ENV_CORE_CONF: Final = "STELLAR_CORE_CONF"

# stellar-core
DEFAULT_PEER_PORT: Final = 11625
DEFAULT_HTTP_PORT: Final = 11626

# StellarNode CRD
STELLARNODE_GROUP: Final = "stellar.org"
STELLARNODE_VERSION: Final = "v1alpha1"
STELLARNODE_PLURAL: Final = "stellarnodes"

FIELD_MANAGER: Final = "stellar-peer-injector"

# Which canonical ConfigMap a mirror copies (`<namespace>/stellar-peers`), so
# that one installation only ever removes its own mirrors.
CANONICAL_ANNOTATION: Final = "stellar.org/peers-canonical"
