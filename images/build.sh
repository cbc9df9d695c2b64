#!/usr/bin/env bash
# Builds step images locally with buildah (no daemon, no registry, no base image):
#
#   images/build.sh [STEP...]     (default: the steps listed in images/Dockerfile)
#
# One cargo invocation compiles every named step for x86_64-unknown-linux-musl (release profile:
# fat LTO, opt-level "s", stripped), so the dependencies compile once; then images/Dockerfile
# is built once per step with BINARY_FROM=prebuilt, whose final stage is the production one.
# Images are tagged localhost/opsteps/STEP:VERSION in the private store under target/images/
# (podman --root target/images/storage --storage-driver vfs images).
set -euo pipefail
# shellcheck source=images/common.sh
source "$(dirname "$0")/common.sh"
mapfile -t steps < <(image_steps "$@")

for tool in cargo buildah musl-gcc; do
  command -v "$tool" >/dev/null || { echo "images: $tool is missing (see images/README.md)" >&2; exit 1; }
done

packages=()
for s in "${steps[@]}"; do packages+=(-p "$s"); done
echo "== cargo build --release --locked --target $target ${packages[*]}"
start=$(date +%s)
cargo build --release --locked --target "$target" "${packages[@]}"
echo "musl release build: $(($(date +%s) - start)) s"

for s in "${steps[@]}"; do
  context="$work/context/$s"
  rm -rf "$context" && mkdir -p "$context"
  cp "$bin_dir/$s" "$context/$s"
  bah bud --quiet --layers=false -f images/Dockerfile \
    --build-arg BINARY_FROM=prebuilt --build-arg STEP="$s" --build-arg VERSION="$version" \
    --build-arg REVISION="$revision" --build-arg SOURCE="$source_url" \
    -t "$(image_of "$s")" "$context" >/dev/null
  echo "$(image_of "$s"): $(pod image inspect --format '{{.Size}}' "$(image_of "$s")") bytes"
done
# Earlier builds of the same tags, now untagged.
bah rmi --prune >/dev/null 2>&1 || true
