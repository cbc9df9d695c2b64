//! Environment variables for verify-cluster's own flags (the shared ones are in `opsteps::env`).

/// `--profile`.
pub const PROFILE: &str = "OPSTEPS_PROFILE";
/// `--check`.
pub const CHECK: &str = "OPSTEPS_CHECK";
/// `--skip`.
pub const SKIP: &str = "OPSTEPS_SKIP";
/// `--target-kubernetes`.
pub const TARGET_KUBERNETES: &str = "OPSTEPS_TARGET_KUBERNETES";
/// `--expect-kubernetes`.
pub const EXPECT_KUBERNETES: &str = "OPSTEPS_EXPECT_KUBERNETES";
/// `--fail-on`.
pub const FAIL_ON: &str = "OPSTEPS_FAIL_ON";
/// `--cluster-name`.
pub const CLUSTER_NAME: &str = "OPSTEPS_CLUSTER_NAME";
/// `--require-nodegroup`.
pub const REQUIRE_NODEGROUP: &str = "OPSTEPS_REQUIRE_NODEGROUP";
/// `--min-ready`.
pub const MIN_READY: &str = "OPSTEPS_MIN_READY";
/// `--pending-threshold`.
pub const PENDING_THRESHOLD: &str = "OPSTEPS_PENDING_THRESHOLD";
/// `--oom-window`.
pub const OOM_WINDOW: &str = "OPSTEPS_OOM_WINDOW";
/// `--min-free-ips`.
pub const MIN_FREE_IPS: &str = "OPSTEPS_MIN_FREE_IPS";
/// `--exec-allow`.
pub const EXEC_ALLOW: &str = "OPSTEPS_EXEC_ALLOW";
/// `--helm-index`.
pub const HELM_INDEX: &str = "OPSTEPS_HELM_INDEX";
/// `--now`.
pub const NOW: &str = "OPSTEPS_NOW";
/// `--timeout`.
pub const TIMEOUT: &str = "OPSTEPS_TIMEOUT";
/// `--page-size`.
pub const PAGE_SIZE: &str = "OPSTEPS_PAGE_SIZE";
