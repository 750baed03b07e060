#!/usr/bin/env bash
# The images the real node runs, built here without Docker or a registry, as
# docker-archive tars in the cache (one per content hash, so a warm cache is a no-op):
#
#   base      Debian bookworm minbase with python3, pip, curl and wget (debootstrap);
#             the Dockerfile's BASE_IMAGE here, since no registry has python:3.11-slim
#   injector  the repo's Dockerfile, unchanged, on that base (buildah)
#   standin   stellar/stellar-core:<tag of the example>: tests/standin.py as /usr/bin/stellar-core,
#             with the stdlib-only modules it imports beside it (STANDIN_FILES)
#   pause     a sleep-forever busybox from Debian's busybox-static, the sandbox image
#
#   scripts/images.sh build    build what is missing, print the archive paths
#   scripts/images.sh paths    print the archive paths (built or not)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE_ROOT="${STELLAR_CACHE:-$HOME/.cache/stellar-peer-injector}"
OUT="$CACHE_ROOT/images"
STORE="$CACHE_ROOT/buildah"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

# shellcheck source=../versions.env
source "$ROOT/versions.env"
INJECTOR_IMAGE="docker.io/library/stellar-peer-injector:$INJECTOR_VERSION"
STANDIN_TAG="$(awk '/image: stellar\/stellar-core:/{sub(/.*stellar-core:/, ""); print; exit}' manifests/examples/validator-deployment.yaml)"
STANDIN_IMAGE="docker.io/stellar/stellar-core:$STANDIN_TAG"
PAUSE_IMAGE="registry.k8s.io/pause:3.10"
BASE_IMAGE="localhost/stellar-peer-injector-base:$SUITE"

log() { echo "images: $*" >&2; }
bah() { buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs "$@"; }

hash_of() { cat "$@" | sha256sum | cut -c1-12; }
base_key() { echo "$SUITE python3 python3-venv python3-pip ca-certificates curl wget" | sha256sum | cut -c1-12; }
injector_key() { { base_key; git ls-files -s Dockerfile pyproject.toml README.md webhook certs 2>/dev/null || find Dockerfile pyproject.toml webhook certs -type f -exec sha256sum {} +; } | sha256sum | cut -c1-12; }
# The stand-in and the stdlib-only modules it imports from beside it.
STANDIN_FILES=(tests/standin.py tests/standin_keys.py tests/standin_config.py tests/standin_quorum.py)
standin_key() { { base_key; hash_of "${STANDIN_FILES[@]}" "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-12; }
pause_key() { hash_of /bin/busybox "${BASH_SOURCE[0]}"; }

archive() { echo "$OUT/$1-$2.tar"; }

build_base() {
  local tar dir ctr mnt
  tar="$(archive base "$(base_key)")"
  [[ -f "$tar.rootfs.tgz" ]] || {
    log "debootstrap $SUITE from $MIRROR (about a minute)"
    dir="$(mktemp -d "$CACHE_ROOT/rootfs.XXXXXX")"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,curl,wget \
      "$SUITE" "$dir" "$MIRROR" > "$CACHE_ROOT/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE_ROOT/debootstrap.log" >&2; rm -rf "$dir"; exit 1; }
    # pip installs into the image's own Python, as in python:3.11-slim.
    rm -f "$dir"/usr/lib/python3*/EXTERNALLY-MANAGED
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -czf "$tar.rootfs.tgz.tmp" . && mv "$tar.rootfs.tgz.tmp" "$tar.rootfs.tgz"
    rm -rf "$dir"
  }
  bah inspect "$BASE_IMAGE" >/dev/null 2>&1 && [[ -f "$STORE/base-$(base_key)-entrypointless" ]] && return 0
  ctr="$(bah from scratch)"
  mnt="$(bah mount "$ctr")"
  tar -C "$mnt" -xzf "$tar.rootfs.tgz"
  bah umount "$ctr" >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 "$ctr"
  bah commit -q "$ctr" "$BASE_IMAGE" >/dev/null
  bah rm "$ctr" >/dev/null
  touch "$STORE/base-$(base_key)-entrypointless"
}

build_injector() {
  local tar; tar="$(archive injector "$(injector_key)")"
  [[ -f "$tar" ]] && return 0
  build_base
  log "injector from the Dockerfile (BASE_IMAGE=$BASE_IMAGE)"
  # The host's CA bundle is mounted for pip's downloads, never copied into the image.
  bah bud --pull=never --isolation chroot --network host --layers=false \
    -v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$INJECTOR_IMAGE" -f Dockerfile . > "$OUT/injector-build.log" 2>&1 \
    || { tail -30 "$OUT/injector-build.log" >&2; exit 1; }
  push "$INJECTOR_IMAGE" "$tar"
}

build_standin() {
  local tar ctr mnt; tar="$(archive standin "$(standin_key)")"
  [[ -f "$tar" ]] && return 0
  build_base
  log "stand-in $STANDIN_IMAGE"
  ctr="$(bah from --pull=never "$BASE_IMAGE")"
  mnt="$(bah mount "$ctr")"
  local file
  for file in "${STANDIN_FILES[@]}"; do
    install -D -m 0644 "$file" "$mnt/usr/lib/stellar-standin/${file#tests/}"
  done
  # Like the official image: the entrypoint, and `stellar-core` by name on PATH.
  printf '#!/bin/sh\nexec /usr/bin/python3 /usr/lib/stellar-standin/standin.py "$@"\n' > "$mnt/usr/bin/stellar-core"
  chmod 0755 "$mnt/usr/bin/stellar-core"
  bah umount "$ctr" >/dev/null
  bah config --entrypoint '["/usr/bin/stellar-core"]' --workingdir / \
    --label "org.opencontainers.image.title=stellar-core stand-in" "$ctr"
  bah commit -q "$ctr" "$STANDIN_IMAGE" >/dev/null
  bah rm "$ctr" >/dev/null
  push "$STANDIN_IMAGE" "$tar"
}

build_pause() {
  local tar ctr mnt; tar="$(archive pause "$(pause_key)")"
  [[ -f "$tar" ]] && return 0
  log "pause from busybox-static"
  ctr="$(bah from scratch)"
  mnt="$(bah mount "$ctr")"
  install -D -m 0755 /bin/busybox "$mnt/bin/busybox"
  bah umount "$ctr" >/dev/null
  bah config --entrypoint '["/bin/busybox", "sh", "-c", "trap \"exit 0\" TERM INT; while :; do /bin/busybox sleep 3600 & wait $!; done"]' "$ctr"
  bah commit -q "$ctr" "$PAUSE_IMAGE" >/dev/null
  bah rm "$ctr" >/dev/null
  push "$PAUSE_IMAGE" "$tar"
}

push() {  # push IMAGE FILE: a docker-archive that `ctr images import` loads under IMAGE's name
  # One archive per image in the cache: the one for this content.
  rm -f "${2%-*}"-*.tar "$2.tmp"
  bah push -q "$1" "docker-archive:$2.tmp:$1" >/dev/null
  mv "$2.tmp" "$2"
}

paths() {
  archive pause "$(pause_key)"
  archive standin "$(standin_key)"
  archive injector "$(injector_key)"
}

case "${1:-build}" in
  build)
    command -v buildah >/dev/null && command -v debootstrap >/dev/null \
      || { log "buildah and debootstrap are needed: run scripts/setup.sh"; exit 1; }
    [[ -x /bin/busybox ]] || { log "busybox-static is needed: run scripts/setup.sh"; exit 1; }
    mkdir -p "$OUT" "$STORE"
    build_pause
    build_standin
    build_injector
    paths
    ;;
  paths) paths ;;
  names) printf '%s\n' "$PAUSE_IMAGE" "$STANDIN_IMAGE" "$INJECTOR_IMAGE" ;;
  *) echo "usage: $0 build|paths|names" >&2; exit 2 ;;
esac
