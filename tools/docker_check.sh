#!/usr/bin/env bash
# Builds the CPU image (docker/Dockerfile.cpu) and runs it, on a Debian machine with no container registry:
#   1. a base image from Debian packages (mmdebstrap: bookworm's Python 3.11, venv, git), imported with podman;
#   2. the build context: a fresh clone of this repository's committed HEAD (a real .git, which DVC needs inside
#      the image; a linked worktree's .git is only a pointer file); the CPU torch wheel in a folder of its own;
#   3. podman build --isolation=chroot --network host, with that folder as the `wheels` build context, the host's
#      CA bundle mounted for pip and the host's package index;
#   4. `seg --help` and an import check (torch must be the +cpu build) with `podman --runtime runc run`;
#   5. the embedded pipeline inside the image (`dvc repro`, what `make run` does), then its metrics.
# Run as root (rootful podman): `make docker-check`. Needs: apt-get install podman mmdebstrap runc
#
# Settings (environment):
#   DOCKER_CHECK_DIR       work folder, outside the repository (default /var/tmp/seg-docker-check): base.tar,
#                          the build context, the wheel folder, the logs
#   DOCKER_CHECK_PIPELINE  1 (default): run step 5; 0: stop after step 4
#   DOCKER_CHECK_BUILD     1 (default): steps 1-3; 0: no build, steps 4-5 on the image already tagged IMAGE
#   DOCKER_CHECK_REBUILD_BASE  1: make the base image again even if it exists
#   DEBIAN_MIRROR          default http://deb.debian.org/debian
#   TORCH_WHEEL            the CPU torch wheel (default: torch-2.13.0+cpu-cp311-*.whl from PIP_FIND_LINKS or pip's
#                          find-links setting, else `pip download torch==2.13.0` and it must come out +cpu)
#   CA_BUNDLE              the host's CA bundle (default PIP_CERT, else /etc/ssl/certs/ca-certificates.crt)
#   PIP_INDEX_URL          the package index (default: pip's setting on the host, else PyPI)
#   IMAGE                  the tag (default localhost/seg:cpu); BASE_TAG (default localhost/seg-base:bookworm)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${DOCKER_CHECK_DIR:-/var/tmp/seg-docker-check}
PIPELINE=${DOCKER_CHECK_PIPELINE:-1}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_TAG=${BASE_TAG:-localhost/seg-base:bookworm}
IMAGE=${IMAGE:-localhost/seg:cpu}
CA_BUNDLE=${CA_BUNDLE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}
# runc, named (crun, where installed, fails on hybrid cgroups); both ulimits explicit: podman's defaults exceed the
# host's hard limits in a VM like this one, and runc then stops with "error setting rlimit type 7 (then 6): operation
# not permitted". nofile stays under such a host's hard limit (20000 here).
RUN=(podman --runtime runc run --rm --network none --ulimit nofile=16384:16384 --ulimit nproc=4096:4096)

step() { printf '\n== %s\n' "$*"; }
fail() {
    printf 'docker-check FAILED at: %s\n' "$*" >&2
    exit 1
}
now() { date +%s; }

step "0. tools"
[ "$(id -u)" = 0 ] || fail "run as root (rootful podman, mmdebstrap without user namespaces)"
for tool in podman mmdebstrap runc git; do
    command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install -y podman mmdebstrap runc"
done
[ -r "$CA_BUNDLE" ] || fail "CA bundle $CA_BUNDLE not readable (set CA_BUNDLE)"
case "$WORK" in "$REPO"/*) fail "DOCKER_CHECK_DIR must be outside the repository" ;; esac
mkdir -p "$WORK"
podman --version
runc --version | head -n 1
mmdebstrap --version

build() {
    step "1. base image $BASE_TAG (Debian bookworm packages)"
    t0=$(now)
    if [ "${DOCKER_CHECK_REBUILD_BASE:-0}" = 1 ]; then
        podman image rm -f "$BASE_TAG" >/dev/null 2>&1 || true
        rm -f "$WORK/base.tar"
    fi
    if podman image exists "$BASE_TAG"; then
        echo "exists (DOCKER_CHECK_REBUILD_BASE=1 makes it again)"
    else
        if [ ! -s "$WORK/base.tar" ]; then
            # --format=tar: mmdebstrap otherwise picks the format from the name, and *.part would be a folder
            rm -rf "$WORK/base.tar.part"
            mmdebstrap --variant=minbase --format=tar --include=python3,python3-venv,git,ca-certificates \
                bookworm "$WORK/base.tar.part" "$MIRROR" </dev/null ||
                fail "mmdebstrap (the Debian mirror $MIRROR, set DEBIAN_MIRROR)"
            mv "$WORK/base.tar.part" "$WORK/base.tar"
        fi
        podman import --change 'CMD ["/bin/bash"]' "$WORK/base.tar" "$BASE_TAG" >/dev/null ||
            fail "podman import $WORK/base.tar"
    fi
    echo "base: $(podman image inspect --format '{{.Size}}' "$BASE_TAG" | numfmt --to=iec) in $(($(now) - t0)) s"

    step "2. build context: a clone of $REPO at HEAD, the CPU torch wheel"
    if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
        echo "warning: uncommitted changes in $REPO are not in the image (it is built from HEAD)"
    fi
    CONTEXT="$WORK/context"
    rm -rf "$CONTEXT"
    git clone --quiet --no-local "$REPO" "$CONTEXT" || fail "git clone $REPO"
    git -C "$CONTEXT" checkout --quiet "$(git -C "$REPO" rev-parse HEAD)" || fail "git checkout HEAD in the clone"
    echo "commit $(git -C "$CONTEXT" log -1 --format='%h %s')"

    if [ -z "${TORCH_WHEEL:-}" ]; then
        for dir in ${PIP_FIND_LINKS:-} $(python3 -m pip config get global.find-links 2>/dev/null || true); do
            for whl in "$dir"/torch-2.13.0+cpu-cp311-cp311-*linux*x86_64.whl; do
                [ -f "$whl" ] && TORCH_WHEEL=$whl
            done
        done
    fi
    if [ -z "${TORCH_WHEEL:-}" ]; then
        mkdir -p "$WORK/download"
        python3 -m pip download --quiet --no-deps --only-binary :all: --python-version 3.11 \
            --platform manylinux_2_28_x86_64 torch==2.13.0 -d "$WORK/download" || fail "pip download torch==2.13.0"
        for whl in "$WORK"/download/torch-2.13.0*.whl; do
            [ -f "$whl" ] && TORCH_WHEEL=$whl
        done
        [ -n "${TORCH_WHEEL:-}" ] || fail "pip download torch==2.13.0 left no wheel in $WORK/download"
    fi
    case "$(basename "$TORCH_WHEEL")" in
        torch-2.13.0+cpu-cp311-*.whl) ;;
        *) fail "$TORCH_WHEEL is not the CPU build of torch 2.13.0 for Python 3.11 (set TORCH_WHEEL)" ;;
    esac
    WHEELS="$WORK/wheels"
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    ln -f "$TORCH_WHEEL" "$WHEELS/" 2>/dev/null || cp "$TORCH_WHEEL" "$WHEELS/" || fail "copy $TORCH_WHEEL to $WHEELS"
    echo "wheel: $TORCH_WHEEL (build context wheels=$WHEELS)"

    INDEX=${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}
    INDEX=${INDEX:-https://pypi.org/simple}
    echo "index: $INDEX"

    step "3. podman build $IMAGE (base $BASE_TAG)"
    t0=$(now)
    podman build --isolation=chroot --network host \
        --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
        --build-context wheels="$WHEELS" \
        --build-arg BASE_IMAGE="$BASE_TAG" \
        --build-arg TORCH_INDEX_URL="$INDEX" \
        --build-arg PIP_INDEX_URL="$INDEX" \
        --file "$CONTEXT/docker/Dockerfile.cpu" --tag "$IMAGE" "$CONTEXT" 2>&1 | tee "$WORK/build.log"
    [ "${PIPESTATUS[0]}" = 0 ] || fail "podman build (log: $WORK/build.log)"
    build_s=$(($(now) - t0))
    size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
    echo "image $IMAGE: $(numfmt --to=iec "$size") ($size bytes), built in $build_s s"
}

if [ "${DOCKER_CHECK_BUILD:-1}" = 1 ]; then
    build
else
    podman image exists "$IMAGE" || fail "DOCKER_CHECK_BUILD=0 but there is no image $IMAGE to run"
    echo "DOCKER_CHECK_BUILD=0: steps 1-3 skipped, running $IMAGE as it is"
fi

step "4. seg --help and imports inside the image"
"${RUN[@]}" "$IMAGE" seg --help || fail "seg --help inside $IMAGE"
"${RUN[@]}" "$IMAGE" python -c "
import sys, seg, torch, monai
print('python', sys.version.split()[0], '| torch', torch.__version__, '| monai', monai.__version__)
assert torch.__version__ == '2.13.0+cpu', torch.__version__
" || fail "python -c 'import seg, torch, monai' inside $IMAGE (torch must be 2.13.0+cpu)"

if [ "$PIPELINE" != 1 ]; then
    echo "DOCKER_CHECK_PIPELINE=$PIPELINE: the pipeline step is skipped"
    echo "docker-check: OK (without the pipeline)"
    exit 0
fi

step "5. the embedded pipeline inside the image: dvc repro (what make run does), then its metrics"
t0=$(now)
# --shm-size: the DataLoader workers (params.yaml num_workers) pass batches through /dev/shm, 64 MB by default.
"${RUN[@]}" --shm-size=1g "$IMAGE" sh -c 'dvc repro && dvc metrics show' 2>&1 | tee "$WORK/pipeline.log"
[ "${PIPESTATUS[0]}" = 0 ] || fail "dvc repro inside $IMAGE (log: $WORK/pipeline.log)"
echo "pipeline: $(($(now) - t0)) s"
echo "docker-check: OK"
