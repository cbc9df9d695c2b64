//! The environment fallbacks of this step's flags (the shared ones are in `opsteps::env`).

/// `--max-pod-lifetime`.
pub const MAX_POD_LIFETIME: &str = "OPSTEPS_MAX_POD_LIFETIME";
/// `--max-pod-lifetime-seconds`.
pub const MAX_POD_LIFETIME_SECONDS: &str = "OPSTEPS_MAX_POD_LIFETIME_SECONDS";
/// `--states`.
pub const STATES: &str = "OPSTEPS_STATES";
/// `--including-init-containers`.
pub const INCLUDING_INIT_CONTAINERS: &str = "OPSTEPS_INCLUDING_INIT_CONTAINERS";
/// `--including-ephemeral-containers`.
pub const INCLUDING_EPHEMERAL_CONTAINERS: &str = "OPSTEPS_INCLUDING_EPHEMERAL_CONTAINERS";
/// `--namespaces`.
pub const NAMESPACES: &str = "OPSTEPS_NAMESPACES";
/// `--exclude-namespaces`.
pub const EXCLUDE_NAMESPACES: &str = "OPSTEPS_EXCLUDE_NAMESPACES";
/// `--selector`.
pub const SELECTOR: &str = "OPSTEPS_SELECTOR";
/// `--max-per-node`.
pub const MAX_PER_NODE: &str = "OPSTEPS_MAX_PER_NODE";
/// `--max-per-namespace`.
pub const MAX_PER_NAMESPACE: &str = "OPSTEPS_MAX_PER_NAMESPACE";
/// `--max-total`.
pub const MAX_TOTAL: &str = "OPSTEPS_MAX_TOTAL";
/// `--max-per-owner`.
pub const MAX_PER_OWNER: &str = "OPSTEPS_MAX_PER_OWNER";
/// `--evict-local-storage-pods`.
pub const EVICT_LOCAL_STORAGE_PODS: &str = "OPSTEPS_EVICT_LOCAL_STORAGE_PODS";
/// `--evict-daemonset-pods`.
pub const EVICT_DAEMONSET_PODS: &str = "OPSTEPS_EVICT_DAEMONSET_PODS";
/// `--evict-system-critical-pods`.
pub const EVICT_SYSTEM_CRITICAL_PODS: &str = "OPSTEPS_EVICT_SYSTEM_CRITICAL_PODS";
/// `--evict-failed-bare-pods`.
pub const EVICT_FAILED_BARE_PODS: &str = "OPSTEPS_EVICT_FAILED_BARE_PODS";
/// `--ignore-pvc-pods`.
pub const IGNORE_PVC_PODS: &str = "OPSTEPS_IGNORE_PVC_PODS";
/// `--ignore-pods-without-pdb`.
pub const IGNORE_PODS_WITHOUT_PDB: &str = "OPSTEPS_IGNORE_PODS_WITHOUT_PDB";
/// `--min-replicas`.
pub const MIN_REPLICAS: &str = "OPSTEPS_MIN_REPLICAS";
/// `--min-pod-age`.
pub const MIN_POD_AGE: &str = "OPSTEPS_MIN_POD_AGE";
/// `--priority-threshold`.
pub const PRIORITY_THRESHOLD: &str = "OPSTEPS_PRIORITY_THRESHOLD";
/// `--priority-threshold-class`.
pub const PRIORITY_THRESHOLD_CLASS: &str = "OPSTEPS_PRIORITY_THRESHOLD_CLASS";
/// `--honor-opt-out`.
pub const HONOR_OPT_OUT: &str = "OPSTEPS_HONOR_OPT_OUT";
/// `--policy`.
pub const POLICY: &str = "OPSTEPS_POLICY";
/// `--wait-for-replacement`.
pub const WAIT_FOR_REPLACEMENT: &str = "OPSTEPS_WAIT_FOR_REPLACEMENT";
/// `--replacement-timeout`.
pub const REPLACEMENT_TIMEOUT: &str = "OPSTEPS_REPLACEMENT_TIMEOUT";
/// `--spread`.
pub const SPREAD: &str = "OPSTEPS_SPREAD";
/// `--mode`.
pub const MODE: &str = "OPSTEPS_MODE";
/// `--pdb-retry-budget`.
pub const PDB_RETRY_BUDGET: &str = "OPSTEPS_PDB_RETRY_BUDGET";
/// `--timeout`.
pub const TIMEOUT: &str = "OPSTEPS_TIMEOUT";
/// `--now`.
pub const NOW: &str = "OPSTEPS_NOW";
