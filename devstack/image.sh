#!/usr/bin/env bash
# Build the producer image (crypto-pulse-producer) on a Debian machine with no Docker engine and
# no package index inside builds: podman/buildah from Debian packages, a base image made with
# debootstrap, and a wheelhouse built on the host (shared/CONTAINERS.md has the background).
#
#   devstack/image.sh                  # as root, from anywhere in the repository
#
# Idempotent: installs only missing packages, writes the podman configuration only when there is
# none, builds the base image only when it is absent, then refreshes wheels/ and rebuilds the
# image. Settings (environment):
#   IMAGE        the tag to build            (default crypto-pulse-producer)
#   BASE_IMAGE   the local base image        (default localhost/debian-python:bookworm)
#   SUITE        the Debian suite for it     (default bookworm: Python 3.11, like the venv)
#   PYTHON       builds the wheelhouse       (default .venv/bin/python)
#
# Then run it (host network; exchange URLs and AWS_ENDPOINT_URL pointing at local stand-ins):
#   podman --runtime runc --cgroup-manager cgroupfs run --rm --network host \
#     -e AWS_ENDPOINT_URL=... -e AWS_ACCESS_KEY_ID=testing -e AWS_SECRET_ACCESS_KEY=testing \
#     -e AWS_REGION=us-east-1 -e PRODUCER_HEALTH_PORT=8080 -e PRODUCER_BINANCE_WS_URL=... \
#     crypto-pulse-producer
set -euo pipefail

IMAGE=${IMAGE:-crypto-pulse-producer}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:bookworm}
SUITE=${SUITE:-bookworm}
PYTHON=${PYTHON:-.venv/bin/python}
PYTHON_LABEL=org.crypto-pulse.python-version

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (apt-get, debootstrap and rootful podman need it)"
[[ -x $PYTHON ]] || die "$PYTHON not found: create the venv first (make venv)"

# 1. Tools, from Debian packages.
missing=()
for tool in podman buildah runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# 2. Podman's configuration: crun and the default rlimits fail on these machines (cgroup v1
#    hybrid); runc is chosen per command (--runtime runc --cgroup-manager cgroupfs).
conf=/etc/containers/containers.conf
if [[ ! -e $conf ]]; then
    log "writing $conf"
    mkdir -p "$(dirname "$conf")"
    printf '[containers]\ndefault_ulimits = []\nnetns = "host"\n' >"$conf"
elif ! grep -q '^default_ulimits *= *\[\]' "$conf"; then
    log "note: $conf exists without 'default_ulimits = []'; runc may fail on rlimits"
fi

# 3. The base image: Debian's python3 (+ venv, CA bundle, useradd), nothing else.
if podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE exists"
else
    rootfs=$(mktemp -d /var/tmp/debian-python.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap $SUITE into $rootfs (about 2 minutes)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
        "$SUITE" "$rootfs" >"$rootfs.log" 2>&1 ||
        { tail -n 20 "$rootfs.log" >&2; die "debootstrap failed (log: $rootfs.log)"; }
    rm -f "$rootfs.log"
    # What an image does not need: downloaded packages and package lists (as Debian's images).
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/lib/apt/lists/*
    base_python=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    log "importing $BASE_IMAGE (python $base_python)"
    tar -C "$rootfs" -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL $PYTHON_LABEL=$base_python" \
        --change 'CMD ["/bin/bash"]' \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

# The wheelhouse holds wheels for the host's Python: the base image's must be the same version.
host_python=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
base_python=$(podman image inspect --format "{{index .Labels \"$PYTHON_LABEL\"}}" "$BASE_IMAGE")
if [[ -n $base_python && $base_python != "<no value>" && $base_python != "$host_python" ]]; then
    die "$BASE_IMAGE has Python $base_python but $PYTHON is $host_python: wheels would not fit"
fi

# 4. The wheelhouse: requirements.txt at the versions the venv is tested with (constraints.txt).
#    Built afresh beside wheels/ and swapped in, so no stale wheel is ever installed.
log "building the wheelhouse (wheels/)"
rm -rf wheels.new
"$PYTHON" -m pip wheel --quiet -r requirements.txt -c constraints.txt -w wheels.new
rm -rf wheels
mv wheels.new wheels

# 5. The image. Docker format: the OCI format has no HEALTHCHECK and buildah would drop it.
previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
log "building $IMAGE from $BASE_IMAGE"
buildah bud --format docker --isolation chroot \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" .
current=$(podman image inspect --format '{{.Id}}' "$IMAGE")
if [[ -n $previous && $previous != "$current" ]]; then
    podman rmi "$previous" >/dev/null 2>&1 || true # the replaced build, if nothing uses it
fi

healthcheck=$(podman image inspect --format '{{.HealthCheck}}' "$IMAGE")
[[ $healthcheck == *healthz* ]] || die "$IMAGE has no HEALTHCHECK (got: $healthcheck)"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "$IMAGE built: $((size / 1000000)) MB, user $(podman image inspect --format '{{.User}}' "$IMAGE")"
