"""Pods and AdmissionReviews shaped like the ones the API server really sends.

A validator pod as a Deployment's ReplicaSet creates it after the API server's
defaulting (service account token volume, tolerations, managedFields), a plain
non-validator pod, and a large pod (10 containers, 50 env vars, 20 volumes).
"""

from __future__ import annotations

import uuid
from typing import Any

from webhook import names

IMAGE = "stellar/stellar-core:22.1.0-2385.b2a8ecb62.focal"


def _token_volume(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def _managed_fields() -> list[dict[str, Any]]:
    return [
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2026-11-26T15:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:generateName": {},
                    "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                    "f:ownerReferences": {".": {}, 'k:{"uid":"0b4a7c1e"}': {}},
                },
                "f:spec": {
                    "f:containers": {'k:{"name":"stellar-core"}': {".": {}, "f:image": {}}},
                    "f:dnsPolicy": {},
                    "f:restartPolicy": {},
                },
            },
        }
    ]


def _core_container(*, env: int = 8) -> dict[str, Any]:
    return {
        "name": "stellar-core",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": ["run", "--conf", "/etc/stellar/stellar-core.cfg"],
        "ports": [
            {"name": "peer", "containerPort": 11625, "protocol": "TCP"},
            {"name": "http", "containerPort": 11626, "protocol": "TCP"},
        ],
        "env": [
            {"name": "NETWORK_PASSPHRASE", "value": "Test SDF Network ; September 2015"},
            {
                "name": "NODE_SEED",
                "valueFrom": {"secretKeyRef": {"name": "validator-seed", "key": "seed"}},
            },
            *({"name": f"STELLAR_OPTION_{i}", "value": f"value-{i}"} for i in range(env - 2)),
        ],
        "resources": {
            "requests": {"cpu": "1", "memory": "4Gi"},
            "limits": {"cpu": "2", "memory": "8Gi"},
        },
        "readinessProbe": {
            "httpGet": {"path": "/info", "port": "http", "scheme": "HTTP"},
            "periodSeconds": 10,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/stellar"},
            {"name": "data", "mountPath": "/data"},
            {
                "name": "kube-api-access-x7k2p",
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            },
        ],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def _sidecar(name: str, *, env: int = 2) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"example.org/{name}:1.4.2",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "metrics", "containerPort": 9473, "protocol": "TCP"}],
        "env": [
            {"name": f"{name.upper().replace('-', '_')}_{i}", "value": str(i)} for i in range(env)
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "volumeMounts": [
            {
                "name": "kube-api-access-x7k2p",
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            }
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def _spec(containers: list[dict[str, Any]], volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "containers": containers,
        "volumes": volumes,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {"fsGroup": 10001},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    }


def _metadata(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "generateName": name.rsplit("-", 1)[0] + "-",
        "namespace": namespace,
        "labels": labels,
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9473"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": name.rsplit("-", 1)[0],
                "uid": "0b4a7c1e-5d0b-4a3e-9b55-7d1f6b1c2e3a",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        "managedFields": _managed_fields(),
    }


def validator_pod(
    name: str = "validator-7d9f8c6b5-x2k4q", namespace: str = "stellar"
) -> dict[str, Any]:
    """A stellar-core validator with a metrics sidecar, as a ReplicaSet creates it."""
    volumes = [
        {"name": "config", "configMap": {"name": "validator-config", "defaultMode": 420}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "validator-data"}},
        _token_volume("kube-api-access-x7k2p"),
    ]
    labels = {"app": "stellar-validator", "pod-template-hash": "7d9f8c6b5"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(name, namespace, labels),
        "spec": _spec([_core_container(), _sidecar("core-exporter")], volumes),
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


def plain_pod(name: str = "horizon-5c7d9b8f4-p9z2m", namespace: str = "stellar") -> dict[str, Any]:
    """A non-validator pod of similar size (Horizon, no stellar-core image)."""
    pod = validator_pod(name, namespace)
    pod["metadata"]["labels"] = {"app": "horizon", "pod-template-hash": "5c7d9b8f4"}
    core = pod["spec"]["containers"][0]
    core["name"] = "horizon"
    core["image"] = "stellar/stellar-horizon:2.32.0"
    core["ports"] = [{"name": "api", "containerPort": 8000, "protocol": "TCP"}]
    return pod


def large_pod(name: str = "validator-big-0", namespace: str = "stellar") -> dict[str, Any]:
    """10 containers, 50 env vars in all, 20 volumes."""
    containers = [_core_container(env=14)] + [_sidecar(f"sidecar-{i}", env=4) for i in range(9)]
    volumes = [_token_volume("kube-api-access-x7k2p")]
    volumes += [
        {"name": f"config-{i}", "configMap": {"name": f"config-{i}", "defaultMode": 420}}
        for i in range(19)
    ]
    labels = {"app": "stellar-validator", names.NODE_TYPE_LABEL: "validator"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(name, namespace, labels),
        "spec": _spec(containers, volumes),
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


def admission_review(pod: dict[str, Any], *, uid: str | None = None) -> dict[str, Any]:
    """The AdmissionReview (v1) the API server sends for a CREATE of `pod`."""
    namespace = pod["metadata"].get("namespace", "default")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.UUID(int=0x5E11A12)),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "6a1b2c3d-0000-4000-8000-000000000001",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                    "system:authenticated",
                ],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }
