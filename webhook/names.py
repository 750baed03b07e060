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
# The default `image_pattern`: a container image repository matching it is a validator's
DEFAULT_IMAGE_PATTERN: Final = r"(^|/)stellar-core$"
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
# The node's network (a DNS label); wins over what the node reports
NETWORK_LABEL: Final = "stellar.org/network"
# HOME_DOMAIN of the node's `[[VALIDATORS]]` block in validators-<network>.cfg
HOME_DOMAIN_ANNOTATION: Final = "stellar.org/home-domain"

# The ConfigMap
CONFIGMAP_NAME: Final = "stellar-peers"
KEY_JSON: Final = "peers.json"
KEY_TXT: Final = "peers.txt"
KEY_CSV: Final = "peers.csv"
KEY_COUNT: Final = "peer_count"
KEY_KNOWN_PEERS: Final = "known_peers.cfg"
# Per network (`peers-testnet.txt`, ...): the unqualified keys above hold the whole
# set only while the cluster has one network (webhook.core.peerset.networks).
KEY_NETWORK_TXT: Final = "peers-{}.txt"
KEY_NETWORK_CSV: Final = "peers-{}.csv"
KEY_NETWORK_COUNT: Final = "peer_count-{}"
KEY_NETWORK_KNOWN_PEERS: Final = "known_peers-{}.cfg"
KEY_NETWORK_PREFERRED_KEYS: Final = "preferred_peer_keys-{}.cfg"
KEY_NETWORK_VALIDATORS: Final = "validators-{}.cfg"
# The set of nodes whose network is not known: handed only to each other
UNKNOWN_NETWORK: Final = "unknown"
OWNER_LABELS: Final = {
    "app.kubernetes.io/name": "stellar-peer-injector",
    "app.kubernetes.io/component": "peer-discovery",
}
CONFIGMAP_MAX_BYTES: Final = 1024 * 1024
# Past this many bytes of `peers.json` the mirrors leave it out (pods read peers.txt)...
MIRROR_JSON_MAX_BYTES: Final = 512 * 1024
# ...and past CONFIGMAP_MAX_BYTES the canonical one holds it gzip-compressed in binaryData.
KEY_JSON_GZ: Final = "peers.json.gz"
# The longest wait the injected postStart hook accepts (its shell checks it too).
HOOK_MAX_TIMEOUT_SECONDS: Final = 24 * 3600

# What is injected
VOLUME_NAME: Final = "stellar-peers"
MOUNT_PATH: Final = "/etc/stellar/peers"
ENV_PEERS_FILE: Final = "STELLAR_PEERS_FILE"
ENV_PEERS: Final = "STELLAR_PEERS"
ENV_PEER_COUNT: Final = "STELLAR_PEER_COUNT"
ENV_POD_IP: Final = "STELLAR_POD_IP"
# The pod's `stellar.org/network` label, for the hook to pick its network's file
ENV_NETWORK: Final = "STELLAR_NETWORK"
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

# Beyond one cluster (DESIGN.md): the address nodes outside this cluster dial, and links.
ADVERTISED_ADDRESS_ANNOTATION: Final = "stellar.org/advertised-address"
LINK_LABEL: Final = "stellar.org/peer-link"
LINK_KEY_CLUSTER: Final = "cluster"
LINK_KEY_KUBECONFIG: Final = "kubeconfig"
DEFAULT_CLUSTER_NAME: Final = "local"
