#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent and quick when warm:
# Debian packages (etcd, openssl, curl, dash; containerd, runc, CNI plugins,
# iptables, buildah, debootstrap, busybox-static for the real node and its
# images), the Kubernetes binaries and helm built from Go modules (cached
# outside the repo), and the venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v wget >/dev/null || need+=(wget)
[[ -x /bin/dash ]] || need+=(dash)
# The real node (scripts/node.sh) and its images (scripts/images.sh).
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
[[ -x /bin/busybox ]] || need+=(busybox-static)
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

"$ROOT/scripts/build-k8s.sh"
"$ROOT/scripts/build-helm.sh"

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml | md5sum | cut -c1-12)"
if [[ ! -f "$stamp" ]]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "setup: ready"
