//! Every environment variable opsteps reads, in one place, so `--help`, the README and the
//! WorkflowTemplates agree on the names.

/// Kubeconfig file (`--kubeconfig`), as kubectl reads it.
pub const KUBECONFIG: &str = "KUBECONFIG";
/// Kubeconfig context (`--context`).
pub const KUBE_CONTEXT: &str = "OPSTEPS_CONTEXT";
/// Use the pod's ServiceAccount (`--in-cluster`).
pub const IN_CLUSTER: &str = "OPSTEPS_IN_CLUSTER";
/// Target EKS cluster name (`--eks-cluster`).
pub const EKS_CLUSTER: &str = "OPSTEPS_EKS_CLUSTER";
/// Cluster name the operator expects to act on (`--expect-cluster`).
pub const EXPECT_CLUSTER: &str = "OPSTEPS_EXPECT_CLUSTER";
/// AWS region, as every AWS SDK reads it.
pub const AWS_REGION: &str = "AWS_REGION";
/// Lifetime of a generated EKS token before it is replaced (`--eks-token-lifetime`); tests
/// shorten it.
pub const EKS_TOKEN_LIFETIME: &str = "OPSTEPS_EKS_TOKEN_LIFETIME";
/// Log format (`--log-format`).
pub const LOG_FORMAT: &str = "OPSTEPS_LOG_FORMAT";
/// Log filter, tracing's `EnvFilter` syntax.
pub const RUST_LOG: &str = "RUST_LOG";
/// Directory for named output files (`--output-dir`).
pub const OUTPUT_DIR: &str = "OPSTEPS_OUTPUT_DIR";
/// Termination message file (`--termination-log`); Kubernetes reads `/dev/termination-log`.
pub const TERMINATION_LOG: &str = "OPSTEPS_TERMINATION_LOG";
/// Audit log file (`--audit-log`).
pub const AUDIT_LOG: &str = "OPSTEPS_AUDIT_LOG";
/// Dry-run mode (`--dry-run`).
pub const DRY_RUN: &str = "OPSTEPS_DRY_RUN";
/// Progress file that Argo sets for the main container (`N/M` is written to it).
pub const ARGO_PROGRESS_FILE: &str = "ARGO_PROGRESS_FILE";
/// Workflow name, injected by Argo into the main container.
pub const ARGO_WORKFLOW_NAME: &str = "ARGO_WORKFLOW_NAME";
/// Workflow UID, injected by Argo.
pub const ARGO_WORKFLOW_UID: &str = "ARGO_WORKFLOW_UID";
/// Node id of the step, injected by Argo.
pub const ARGO_NODE_ID: &str = "ARGO_NODE_ID";
/// Pod name, injected by Argo.
pub const ARGO_POD_NAME: &str = "ARGO_POD_NAME";
/// Namespace of the workflow's pod (downward API in our templates).
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
