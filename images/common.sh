# Sourced by images/build.sh and images/smoke.sh: the settings both use, and podman/buildah on a
# private storage root and config under target/images/ (never the machine's own).
# shellcheck shell=bash

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target=x86_64-unknown-linux-musl
bin_dir="$root/target/$target/release"
work="$root/target/images"
uid=65532
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
source_url=$(sed -n '/^\[workspace.package\]/,/^\[/s/^repository = "\(.*\)"/\1/p' Cargo.toml)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[ -n "$version" ] || { echo "images: no [workspace.package] version in Cargo.toml" >&2; exit 1; }

# The steps named on the command line, or those images/Dockerfile lists.
image_steps() {
  if (($#)); then
    printf '%s\n' "$@"
  else
    sed -n 's/^# Steps: //p' images/Dockerfile | tr ' ' '\n'
  fi
}

image_of() { echo "localhost/opsteps/$1:$version"; }

mkdir -p "$work/run" "$work/tmp"
cat >"$work/containers.conf" <<'CONF'
# Written by images/common.sh. crun and the default ulimits fail on these machines.
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat >"$work/storage.conf" <<CONF
# Written by images/common.sh.
[storage]
driver = "vfs"
graphroot = "$work/storage"
runroot = "$work/run"
CONF
export CONTAINERS_CONF="$work/containers.conf"
export CONTAINERS_STORAGE_CONF="$work/storage.conf"
store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
bah() { buildah "${store[@]}" "$@"; }
pod() { podman "${store[@]}" --tmpdir "$work/tmp" --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"; }
