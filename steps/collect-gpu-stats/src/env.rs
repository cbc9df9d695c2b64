//! Environment variables of this step's flags, in one place (`--help`, the README and the
//! WorkflowTemplate agree on them).

/// `--s3-url`.
pub const S3_URL: &str = "OPSTEPS_GPU_S3_URL";
/// `--cluster-name`.
pub const CLUSTER_NAME: &str = "OPSTEPS_GPU_CLUSTER_NAME";
/// `--via-apiserver`.
pub const VIA_APISERVER: &str = "OPSTEPS_GPU_VIA_APISERVER";
/// `--samples`.
pub const SAMPLES: &str = "OPSTEPS_GPU_SAMPLES";
/// `--interval`.
pub const INTERVAL: &str = "OPSTEPS_GPU_INTERVAL";
/// `--concurrency`.
pub const CONCURRENCY: &str = "OPSTEPS_GPU_CONCURRENCY";
/// `--scrape-timeout`.
pub const SCRAPE_TIMEOUT: &str = "OPSTEPS_GPU_SCRAPE_TIMEOUT";
/// `--timeout`.
pub const TIMEOUT: &str = "OPSTEPS_GPU_TIMEOUT";
/// `--idle-util-percent`.
pub const IDLE_UTIL_PERCENT: &str = "OPSTEPS_GPU_IDLE_UTIL_PERCENT";
/// `--held-memory-mib`.
pub const HELD_MEMORY_MIB: &str = "OPSTEPS_GPU_HELD_MEMORY_MIB";
/// `--prometheus-url`.
pub const PROMETHEUS_URL: &str = "OPSTEPS_GPU_PROMETHEUS_URL";
/// `--prometheus-window`.
pub const PROMETHEUS_WINDOW: &str = "OPSTEPS_GPU_PROMETHEUS_WINDOW";
/// `--prometheus-sigv4`.
pub const PROMETHEUS_SIGV4: &str = "OPSTEPS_GPU_PROMETHEUS_SIGV4";
/// `--now`.
pub const NOW: &str = "OPSTEPS_GPU_NOW";
