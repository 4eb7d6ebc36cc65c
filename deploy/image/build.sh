#!/usr/bin/env bash
# Build the cloudburst image: the release binary (cargo), then deploy/image/Containerfile
# around it with podman (or docker). The build context is a temporary directory holding
# only the binary, so target/ is not sent.
#   deploy/image/build.sh [TAG]           (default cloudburst:0.1.0)
# Environment: BASE (the base image, default debian:bookworm-slim), PROFILE (release or
# debug), ENGINE (podman or docker, with its global options), BUILD_FLAGS (more options of
# `build`), BINARY (a binary already built: no cargo build). The clients' cloudpickle and
# msgpack versions are taken from .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-cloudburst:0.1.0}
profile=${PROFILE:-release}
engine=${ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
binary=${BINARY:-target/$profile/cloudburst}
if [ -z "${BINARY:-}" ] && [ "$profile" = release ]; then
    cargo build --release --bin cloudburst
elif [ -z "${BINARY:-}" ]; then
    cargo build --bin cloudburst
fi
cp_version=$(.venv/bin/python3 -c 'import cloudpickle; print(cloudpickle.__version__)')
mp_version=$(.venv/bin/python3 -c 'import msgpack; print(".".join(map(str, msgpack.version)))')
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$binary" "$ctx/cloudburst"
strip --strip-debug "$ctx/cloudburst" 2>/dev/null || true
# pip in the build trusts what the host's pip trusts (PIP_CERT, a CA bundle), if set.
ca_flags=()
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
    ca_flags=(-v "$PIP_CERT:/run/pip-ca.crt:ro" --build-arg PIP_CERT=/run/pip-ca.crt)
fi
# shellcheck disable=SC2086 # ENGINE and BUILD_FLAGS are lists of words
$engine build ${BUILD_FLAGS:-} "${ca_flags[@]}" -f deploy/image/Containerfile \
    --build-arg "BASE=${BASE:-debian:bookworm-slim}" \
    --build-arg "CLOUDPICKLE_VERSION=$cp_version" --build-arg "MSGPACK_VERSION=$mp_version" \
    -t "$tag" "$ctx"
echo "built $tag"
