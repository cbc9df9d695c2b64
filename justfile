# opsteps developer recipes. `just` lists them; every recipe wraps plain cargo commands.

shared := env_var_or_default("OPSTEPS_SHARED_DIR", justfile_directory() + "/../shared")

# List the recipes.
default:
    @just --list --unsorted

# Build every crate (debug).
build:
    cargo build --workspace --locked

# The README's test command: the whole suite (tests needing kubectl or Python are ignored here).
test:
    cargo test --workspace --locked

# The ignored tests: kubectl conformance and other tests that need tools a fresh machine may lack.
test-ignored:
    cargo test --workspace --locked -- --ignored --skip child_connects_and_lists_nodes --skip child_drains_with_a_short_token_lifetime

# Formatting check and clippy with warnings denied (what CI runs).
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# The main job: the blue/green node-group upgrade pipeline on the sandbox.
demo:
    cargo demo

# Run one WorkflowTemplate (or cronwf/NAME) with the local runner and this workspace's step
# binaries, e.g. `just run -p cluster=prod ... nodegroup-rotation` (tests/runner/README.md). The
# steps reach whatever cluster their environment points at (`--env NAME=VALUE`).
run *ARGS:
    cargo build --locked --quiet -p opsteps-runner -p drain-node -p evict-old-pods -p bump-addon -p verify-cluster -p collect-gpu-stats --bins
    target/debug/opsteps-run run --workflows workflows --bin-dir target/debug {{ARGS}}

# Serve the sandbox with a scenario (writes a kubeconfig; Ctrl-C stops it).
sandbox scenario="tests/scenarios/small.yaml":
    cargo run --locked -p opsteps-sandbox --bin sandbox -- serve --scenario {{scenario}} --kubeconfig-out target/sandbox.kubeconfig

# RustSec audit against the offline advisory snapshot in ../shared/rustsec.
audit:
    command -v cargo-audit >/dev/null || cargo install --locked cargo-audit
    cargo audit --db {{shared}}/rustsec/advisory-db --no-fetch

# Dependency policy (deny.toml): banned crates, licences, sources (what CI runs).
deny:
    command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
    cargo deny --locked check bans licenses sources

# Benchmarks (release builds), side by side with peers: the sandbox at 18,000 pods (start-up,
# memory, paged list), drain-node vs kubectl drain, evict-old-pods vs kubectl get pods -A, the
# prom-text parser vs Python's prometheus_client (MB/s, samples/s), collect-gpu-stats over 200
# GPU nodes, verify-cluster's health profile vs kubectl get on 18,000 pods.
bench:
    cargo build --release --locked -p opsteps-bench -p drain-node -p evict-old-pods -p collect-gpu-stats -p verify-cluster --bins --examples
    ./target/release/opsteps-bench all
    ./target/release/examples/bench

# The steps that ship as images (images/Dockerfile lists the same; a test keeps them in step).
image_steps := "bump-addon collect-gpu-stats drain-node evict-old-pods verify-cluster"

# Build every step image locally (buildah, no daemon): static musl binaries in one cargo run,
# then images/Dockerfile's final stage on each (see images/README.md).
images:
    images/build.sh {{image_steps}}

# Build the images of the given steps (e.g. `just image drain-node`), tagged localhost/opsteps/STEP:VERSION.
image +STEPS:
    images/build.sh {{STEPS}}

# The image smoke test: build, then run each image as uid 65532, read-only, no capabilities
# (--help, --version, and verify-cluster against the sandbox over TLS).
images-smoke:
    images/smoke.sh {{image_steps}}

# Validate workflows/ offline (or the given files): both Argo schemas (4.1.2, 3.7.18) with every
# object closed, Kubernetes 1.35 for RBAC objects, and our rules (refs, tags, descriptions, enums,
# deadlines, retries, step flags from each binary's --help, RBAC against the step READMEs).
validate-workflows *FILES:
    cargo build --locked -p drain-node -p evict-old-pods -p bump-addon -p verify-cluster -p collect-gpu-stats --bins
    OPSTEPS_SHARED_DIR={{shared}} cargo run --locked -q -p opsteps-workflows-check --bin validate-workflows -- {{FILES}}
