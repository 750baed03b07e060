"""A network shaped like SDF's chart forms on the real node though no pod is Ready first.

stellar/helm-charts' core chart runs a StatefulSet (container ports `core` and
`core-peer`, `run --conf ... --console` through the image's entrypoint) and turns a pod
Ready on `info` saying `Synced!`. Past its start window a node says `Synced!` only once it
has met a quorum of its validators, and a probe that first looks after that window
(`initialDelaySeconds` past it: common for heavy validators) never sees a lone node Ready:
on stellar-core v25.2.0 with Ready-only peers such a network never formed (STELLAR.md).
Here: three such validators of a private network on the stand-in image, each pod's own
seed written by an init container, a headless Service, no peer in any config, the admin
port on 127.0.0.1 (so the injector reaches it only through pods/exec, where `http-command`
logs its quorum set on stderr as v25 does). The injector alone introduces them.
"""

from __future__ import annotations

from typing import Any

from tests.node.conftest import Node, install, wait_in_force
from tests.node.validators import SLOW, TIER_LABEL, apply, status_rows, validator_namespace
from tests.polling import wait_until
from tests.standin_keys import public_key_of, random_seed
from webhook import names

NAMES = ("core-0", "core-1", "core-2")
WINDOW = 5  # the stand-in's start window here (the real binary's: about 35 s)
IMAGE_TAG = "stellar/stellar-core"


def config(keys: list[str]) -> str:
    """The chart's config as a private network of three needs it (README "A validator
    config that includes the peers file"); the seed is prepended per pod."""
    validators = ",\n".join(f'  "{key} {name}"' for key, name in zip(keys, NAMES, strict=True))
    return f"""HTTP_PORT=11626
PUBLIC_HTTP_PORT=false
PEER_PORT=11625
NETWORK_PASSPHRASE="Node tier private network ; December 2026"
DATABASE="sqlite3:///data/stellar.db"
BUCKET_DIR_PATH="/data/buckets"
NODE_IS_VALIDATOR=true
UNSAFE_QUORUM=true
FAILURE_SAFETY=0
STANDIN_START_WINDOW_SECONDS={WINDOW}

[QUORUM_SET]
THRESHOLD_PERCENT=67
VALIDATORS=[
{validators}
]

[HISTORY.local]
get="cp /data/history/{{0}} {{1}}"
put="cp {{0}} /data/history/{{1}}"
mkdir="mkdir -p /data/history/{{0}}"
"""


def documents(image: str, seeds: dict[str, str]) -> list[dict[str, Any]]:
    keys = [public_key_of(seeds[name]) for name in NAMES]
    labels = {"app": "core", "stellar.org/network": "private"}
    # What the init container writes: this pod's own seed on top, then the shared config.
    assemble = (
        'printf \'NODE_SEED="%s"\\n\' "$(cat /seeds/$POD_NAME)" > /data/stellar-core.cfg\n'
        "cat /config/stellar-core.cfg >> /data/stellar-core.cfg\n"
        "[ -f /data/stellar.db ] || stellar-core new-db --conf /data/stellar-core.cfg\n"
    )
    synced = 'curl -s http://127.0.0.1:11626/info | grep -q \'"state" : "Synced!"\''
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "core-seeds"},
            "stringData": seeds,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "core-config"},
            "data": {"stellar-core.cfg": config(keys)},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "core"},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": labels,
                "ports": [{"name": "core-peer", "port": 11625}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "core", "labels": labels},
            "spec": {
                "serviceName": "core",
                "replicas": len(NAMES),
                # All at once, as a new private network or a cold restart starts: with
                # OrderedReady, core-1 would wait for a core-0 that cannot sync alone.
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "initContainers": [
                            {
                                "name": "config",
                                "image": image,
                                "command": ["/bin/sh", "-c", assemble],
                                "env": [
                                    {
                                        "name": "POD_NAME",
                                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                    }
                                ],
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/data"},
                                    {"name": "seeds", "mountPath": "/seeds"},
                                    {"name": "config", "mountPath": "/config"},
                                ],
                            }
                        ],
                        "containers": [
                            {
                                "name": "core",
                                "image": image,
                                "args": ["run", "--conf", "/data/stellar-core.cfg", "--console"],
                                "ports": [
                                    {"name": "core", "containerPort": 11626},
                                    {"name": "core-peer", "containerPort": 11625},
                                ],
                                "readinessProbe": {
                                    "exec": {"command": ["/bin/sh", "-c", synced]},
                                    "initialDelaySeconds": WINDOW + 10,
                                    "periodSeconds": 2,
                                },
                                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            }
                        ],
                        "volumes": [
                            {"name": "data", "emptyDir": {}},
                            {"name": "seeds", "secret": {"secretName": "core-seeds"}},
                            {"name": "config", "configMap": {"name": "core-config"}},
                        ],
                    },
                },
            },
        },
    ]


def standin_image() -> str:
    """The stand-in image, tagged as the shipped example's stellar-core image."""
    from tests.node.validators import example_documents

    for doc in example_documents():
        if doc["kind"] == "Deployment":
            return str(doc["spec"]["template"]["spec"]["containers"][0]["image"])
    raise AssertionError("the example has no Deployment")


def test_a_chart_shaped_network_forms_with_no_pod_ready_first(installed: Node) -> None:
    node = installed
    node.kubectl("delete", "namespace", "-l", f"{TIER_LABEL}=true", "--wait=false")
    node.kubectl("wait", "--for=delete", "namespace", "-l", f"{TIER_LABEL}=true", "--timeout=240s")
    install("manifests/overlays/exec")  # admin on 127.0.0.1: exec only
    ns = validator_namespace(node, "chart")
    wait_in_force(node)
    apply(node, ns, documents(standin_image(), {name: random_seed() for name in NAMES}))

    def all_ready() -> list[dict[str, Any]] | None:
        pods = node.json("get", "pods", "-n", ns, "-l", "app=core")["items"]
        ready = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        return ready if len(ready) == len(NAMES) else None

    pods = wait_until(all_ready, timeout=SLOW, interval=2, message="the three Ready (Synced!)")
    for pod in pods:  # injected, and what the exec'd `peers` said is on the pod
        assert pod["metadata"]["labels"].get(names.INJECTED_LABEL) == "true"

    last = {"status": ""}

    def connected() -> str | None:
        run = node.stellar_peers("status", "--reload-mode", "exec")
        last["status"] = run.stdout + run.stderr
        rows = status_rows(run.stdout, ns)
        done = len(rows) == len(NAMES) and all(
            r["PEERS"] == "2/2" and r["READY"] == "True" for r in rows
        )
        return run.stdout if done else None

    try:
        table = wait_until(connected, timeout=SLOW, interval=2, message="each connected to two")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last status said:\n{last['status']}") from None
    print(table)
    assert all(r["MODE"] == "exec" for r in status_rows(table, ns)), table
