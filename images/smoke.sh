#!/usr/bin/env bash
# Smoke test of the step images with real OCI tools, no daemon and no registry (images/README.md).
#
#   images/smoke.sh [STEP...]     (default: the steps listed in images/Dockerfile)
#
# Builds the steps for x86_64-unknown-linux-musl in one cargo invocation, checks each binary is
# static, builds each image with buildah from images/Dockerfile (BINARY_FROM=prebuilt: the same
# final stage as production) and checks its size (< 20 MiB), labels, user and contents. Then runs
# each with podman as uid 65532, read-only root, all capabilities dropped and no-new-privileges:
# `STEP --help` and `STEP --version`; and verify-cluster for real against `sandbox serve` over
# TLS, once with the kubeconfig mounted read-only and once by EKS cluster name. Storage, config
# and scratch files live under target/images/; the machine's container config is not used.
# Prints one PASS/FAIL line per check and `images smoke: N passed, M failed`; exits 1 on any
# failure. Needs: cargo with the musl target, musl-tools, buildah, podman, runc, file.
set -euo pipefail
# shellcheck source=images/common.sh
source "$(dirname "$0")/common.sh"
mapfile -t steps < <(image_steps "$@")
max_bytes=$((20 * 1024 * 1024))

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'PASS %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
check() { # check NAME COMMAND...: PASS when the command succeeds
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
finish() {
  printf '\nimages smoke: %d passed, %d failed\n' "$passed" "$failed"
  ((failed == 0))
}

for tool in podman runc file ldd; do
  command -v "$tool" >/dev/null || { echo "smoke: $tool is missing (see images/README.md)" >&2; exit 1; }
done
rm -rf "$work/out" && mkdir -p "$work/out"
if ! "$root/images/build.sh" "${steps[@]}"; then
  fail "images/build.sh ${steps[*]}"
  finish || exit 1
fi
# How the WorkflowTemplates' securityContext runs a step.
locked=(run --rm --network host --user "$uid:$uid" --read-only --cap-drop=ALL --security-opt no-new-privileges)

for s in "${steps[@]}"; do
  bin="$bin_dir/$s"
  echo
  echo "== $s"
  desc=$(file -b "$bin")
  check "$s: file says static ($desc)" grep -Eq 'static(-pie)? linked|statically linked' <<<"$desc"
  ldd_out=$(ldd "$bin" 2>&1 || true)
  check "$s: ldd finds no shared libraries ($ldd_out)" \
    bash -c '! grep -q "=>" <<<"$1" && grep -Eq "not a dynamic executable|statically linked" <<<"$1"' _ "$ldd_out"
  check "$s: binary $(stat -c %s "$bin") bytes < $max_bytes" test "$(stat -c %s "$bin")" -lt "$max_bytes"

  image=$(image_of "$s")
  size=$(pod image inspect --format '{{.Size}}' "$image")
  echo "image size: $size bytes ($((size / 1024)) KiB)"
  check "$s: image $size bytes < $max_bytes" test "$size" -lt "$max_bytes"
  user=$(pod image inspect --format '{{.Config.User}}' "$image")
  check "$s: USER is $uid:$uid (got $user)" test "$user" = "$uid:$uid"
  label() { pod image inspect --format "{{index .Config.Labels \"org.opencontainers.image.$1\"}}" "$image"; }
  check "$s: label title = $s" test "$(label title)" = "$s"
  check "$s: label version = $version" test "$(label version)" = "$version"
  check "$s: label revision = $revision" test "$(label revision)" = "$revision"
  check "$s: label source = $source_url" test "$(label source)" = "$source_url"
  cid=$(pod create "$image" "$s")
  files=$(pod export "$cid" | tar -t | grep -v '/$' | sort | tr '\n' ' ')
  pod rm "$cid" >/dev/null
  check "$s: the image holds the binary only ($files)" test "$files" = "usr/local/bin/$s "

  help=$(pod "${locked[@]}" "$image" "$s" --help 2>&1) && rc=0 || rc=$?
  check "$s: --help exits 0 (got $rc)" test "$rc" -eq 0
  check "$s: --help prints the usage" grep -q "^Usage: $s" <<<"$help"
  ver=$(pod "${locked[@]}" "$image" "$s" --version 2>&1) && rc=0 || rc=$?
  check "$s: --version prints '$s $version' (got '$ver', exit $rc)" test "$rc-$ver" = "0-$s $version"
  check "$s: runs with the absolute path as entrypoint too" \
    pod "${locked[@]}" --entrypoint "/usr/local/bin/$s" "$image" --version
done

# --- A real read-only run: verify-cluster against the sandbox over TLS. ---
if [[ " ${steps[*]} " == *" verify-cluster "* ]]; then
  echo
  echo "== verify-cluster against sandbox serve"
  # SANDBOX_BIN: a sandbox binary built earlier (.ci/run keeps one after freeing target/debug).
  sandbox_bin=${SANDBOX_BIN:-}
  if [[ -z "$sandbox_bin" ]]; then
    cargo build --locked -p opsteps-sandbox --bin sandbox
    sandbox_bin="$root/target/debug/sandbox"
  fi
  sandbox_dir="$work/sandbox"
  rm -rf "$sandbox_dir" && mkdir -p "$sandbox_dir"
  "$sandbox_bin" serve --scenario tests/scenarios/small.yaml \
    --kubeconfig-out "$sandbox_dir/admin.kubeconfig" --request-log "$sandbox_dir/requests.jsonl" \
    >"$sandbox_dir/serve.out" 2>"$sandbox_dir/serve.err" &
  sandbox_pid=$!
  trap 'kill "$sandbox_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do
    [ -s "$sandbox_dir/serve.out" ] && break
    kill -0 "$sandbox_pid" 2>/dev/null || break
    sleep 0.1
  done
  env_line=$(head -n 1 "$sandbox_dir/serve.out" || true)
  if [ -z "$env_line" ]; then
    fail "sandbox serve started"
    cat "$sandbox_dir/serve.err" >&2
    finish
    exit 1
  fi
  pass "sandbox serve started"
  server=$(sed -n 's/^ *server: *//p' "$sandbox_dir/admin.kubeconfig" | head -n 1)
  check "the sandbox serves HTTPS ($server)" grep -q '^https://' <<<"$server"
  # The kubeconfig as a pod would get it: a read-only file the step's user can read.
  install -m 0400 -o "$uid" -g "$uid" "$sandbox_dir/admin.kubeconfig" "$sandbox_dir/kubeconfig"
  image=$(image_of verify-cluster)

  run_verify() { # run_verify NAME EXTRA-PODMAN-ARGS... -- STEP-ARGS...
    local name=$1; shift
    local out="$work/out/$name"
    mkdir -p "$out" && chown "$uid:$uid" "$out"
    local podman_args=()
    while [ "$1" != "--" ]; do podman_args+=("$1"); shift; done
    shift
    local before
    before=$(wc -l <"$sandbox_dir/requests.jsonl")
    local rc=0
    pod "${locked[@]}" -v "$out:/out:rw" "${podman_args[@]}" "$image" \
      verify-cluster --profile health --output-dir /out --log-format json "$@" \
      >"$out.stdout" 2>"$out.stderr" || rc=$?
    check "verify-cluster ($name) exits 0 (got $rc)" test "$rc" -eq 0
    [ "$rc" -eq 0 ] || tail -n 20 "$out.stderr"
    check "verify-cluster ($name) prints a JSON report with checks" \
      grep -q '"checks":\[{' "$out.stdout"
    check "verify-cluster ($name) wrote report.json, report.md and summary" \
      test -s "$out/report.json" -a -s "$out/report.md" -a -s "$out/summary"
    check "verify-cluster ($name) summary says PASS ($(cat "$out/summary" 2>/dev/null))" \
      grep -q 'PASS' "$out/summary"
    local after
    after=$(wc -l <"$sandbox_dir/requests.jsonl")
    check "verify-cluster ($name) reached the API server ($((after - before)) requests)" \
      test "$after" -gt "$before"
    check "verify-cluster ($name) sent no mutating request" \
      bash -c '! tail -n +"$(($1 + 1))" "$2" | grep -q "\"mutating\":true"' _ "$before" "$sandbox_dir/requests.jsonl"
  }

  run_verify kubeconfig -v "$sandbox_dir/kubeconfig:/kubeconfig:ro" -- --kubeconfig /kubeconfig
  # By cluster name: DescribeCluster through the AWS SDK client (the sandbox's EKS endpoint is
  # plain HTTP on loopback), then TLS to the API server with the CA from DescribeCluster and an
  # IAM token signed in the image.
  eks_env=()
  for kv in $env_line; do
    case "$kv" in AWS_*) eks_env+=(-e "$kv") ;; esac
  done
  cluster=$(sed -n 's/^  name: *//p' tests/scenarios/small.yaml | head -n 1)
  run_verify eks "${eks_env[@]}" -- --eks-cluster "$cluster" --expect-cluster "$cluster"
  check "verify-cluster (eks) ran the EKS checks" \
    bash -c '! grep -q "no EKS cluster name" "$1"' _ "$work/out/eks.stdout"
  kill "$sandbox_pid" 2>/dev/null || true
  wait "$sandbox_pid" 2>/dev/null || true
  trap - EXIT
fi

finish
