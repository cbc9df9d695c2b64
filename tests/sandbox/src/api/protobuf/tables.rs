//! The JSON conversion of every message the sandbox decodes from protobuf (see `conv!`).
//! Modes (see `put`): `e` omitempty, `p` a Go pointer, `k` always written, `i` an embedded
//! message; `x` refuses the body when set.

use super::conv;
use super::{apps, autoscaling, batch, core, meta, networking, policy, rbac, scheduling};

conv!(meta::ObjectMeta {
    name: e "name",
    generate_name: e "generateName",
    namespace: e "namespace",
    self_link: e "selfLink",
    uid: e "uid",
    resource_version: e "resourceVersion",
    generation: e "generation",
    creation_timestamp: k "creationTimestamp",
    deletion_timestamp: e "deletionTimestamp",
    deletion_grace_period_seconds: p "deletionGracePeriodSeconds",
    labels: e "labels",
    annotations: e "annotations",
    owner_references: e "ownerReferences",
    finalizers: e "finalizers",
    managed_fields: x "managedFields",
});
conv!(meta::OwnerReference {
    api_version: e "apiVersion",
    kind: e "kind",
    name: e "name",
    uid: e "uid",
    controller: p "controller",
    block_owner_deletion: p "blockOwnerDeletion",
});
conv!(meta::LabelSelector {
    match_labels: e "matchLabels",
    match_expressions: e "matchExpressions",
});
conv!(meta::LabelSelectorRequirement {
    key: e "key",
    operator: e "operator",
    values: e "values",
});
conv!(meta::DeleteOptions {
    grace_period_seconds: p "gracePeriodSeconds",
    preconditions: p "preconditions",
    orphan_dependents: p "orphanDependents",
    propagation_policy: p "propagationPolicy",
    dry_run: e "dryRun",
    ignore_store_read_error_with_cluster_breaking_potential: p "ignoreStoreReadErrorWithClusterBreakingPotential",
});
conv!(meta::Preconditions {
    uid: p "uid",
    resource_version: p "resourceVersion",
});
conv!(core::v1::Namespace {
    metadata: e "metadata",
    spec: e "spec",
    status: e "status",
});
conv!(core::v1::NamespaceSpec {
    finalizers: e "finalizers",
});
conv!(core::v1::NamespaceStatus {
    phase: e "phase",
    conditions: x "conditions",
});
conv!(core::v1::ConfigMap {
    metadata: e "metadata",
    immutable: p "immutable",
    data: e "data",
    binary_data: e "binaryData",
});
conv!(core::v1::Secret {
    metadata: e "metadata",
    immutable: p "immutable",
    data: e "data",
    string_data: e "stringData",
    r#type: e "type",
});
conv!(core::v1::Service {
    metadata: e "metadata",
    spec: e "spec",
    status: e "status",
});
conv!(core::v1::ServiceSpec {
    ports: e "ports",
    selector: e "selector",
    cluster_ip: e "clusterIP",
    cluster_ips: e "clusterIPs",
    r#type: e "type",
    external_ips: e "externalIPs",
    session_affinity: e "sessionAffinity",
    load_balancer_ip: e "loadBalancerIP",
    load_balancer_source_ranges: e "loadBalancerSourceRanges",
    external_name: e "externalName",
    external_traffic_policy: e "externalTrafficPolicy",
    health_check_node_port: e "healthCheckNodePort",
    publish_not_ready_addresses: e "publishNotReadyAddresses",
    session_affinity_config: x "sessionAffinityConfig",
    ip_families: e "ipFamilies",
    ip_family_policy: p "ipFamilyPolicy",
    allocate_load_balancer_node_ports: p "allocateLoadBalancerNodePorts",
    load_balancer_class: p "loadBalancerClass",
    internal_traffic_policy: p "internalTrafficPolicy",
    traffic_distribution: p "trafficDistribution",
});
conv!(core::v1::ServicePort {
    name: e "name",
    protocol: e "protocol",
    app_protocol: p "appProtocol",
    port: e "port",
    target_port: e "targetPort",
    node_port: e "nodePort",
});
conv!(core::v1::ServiceStatus {
    load_balancer: x "loadBalancer",
    conditions: x "conditions",
});
conv!(core::v1::ServiceAccount {
    metadata: e "metadata",
    secrets: e "secrets",
    image_pull_secrets: e "imagePullSecrets",
    automount_service_account_token: p "automountServiceAccountToken",
});
conv!(core::v1::ObjectReference {
    kind: e "kind",
    namespace: e "namespace",
    name: e "name",
    uid: e "uid",
    api_version: e "apiVersion",
    resource_version: e "resourceVersion",
    field_path: e "fieldPath",
});
conv!(core::v1::LocalObjectReference {
    name: e "name",
});
conv!(core::v1::Pod {
    metadata: e "metadata",
    spec: e "spec",
    status: e "status",
});
conv!(core::v1::PodSpec {
    volumes: e "volumes",
    init_containers: e "initContainers",
    containers: e "containers",
    ephemeral_containers: x "ephemeralContainers",
    restart_policy: e "restartPolicy",
    termination_grace_period_seconds: p "terminationGracePeriodSeconds",
    active_deadline_seconds: p "activeDeadlineSeconds",
    dns_policy: e "dnsPolicy",
    node_selector: e "nodeSelector",
    service_account_name: e "serviceAccountName",
    service_account: e "serviceAccount",
    automount_service_account_token: p "automountServiceAccountToken",
    node_name: e "nodeName",
    host_network: e "hostNetwork",
    host_pid: e "hostPID",
    host_ipc: e "hostIPC",
    share_process_namespace: p "shareProcessNamespace",
    security_context: x "securityContext",
    image_pull_secrets: e "imagePullSecrets",
    hostname: e "hostname",
    subdomain: e "subdomain",
    affinity: x "affinity",
    scheduler_name: e "schedulerName",
    tolerations: e "tolerations",
    host_aliases: x "hostAliases",
    priority_class_name: e "priorityClassName",
    priority: p "priority",
    dns_config: x "dnsConfig",
    readiness_gates: x "readinessGates",
    runtime_class_name: p "runtimeClassName",
    enable_service_links: p "enableServiceLinks",
    preemption_policy: p "preemptionPolicy",
    overhead: e "overhead",
    topology_spread_constraints: x "topologySpreadConstraints",
    set_hostname_as_fqdn: p "setHostnameAsFQDN",
    os: x "os",
    host_users: p "hostUsers",
    scheduling_gates: x "schedulingGates",
    resource_claims: x "resourceClaims",
    resources: x "resources",
    hostname_override: p "hostnameOverride",
    workload_ref: x "workloadRef",
});
conv!(core::v1::PodStatus {
    observed_generation: e "observedGeneration",
    phase: e "phase",
    conditions: x "conditions",
    message: e "message",
    reason: e "reason",
    nominated_node_name: e "nominatedNodeName",
    host_ip: e "hostIP",
    host_ips: x "hostIPs",
    pod_ip: e "podIP",
    pod_ips: x "podIPs",
    start_time: e "startTime",
    init_container_statuses: x "initContainerStatuses",
    container_statuses: x "containerStatuses",
    qos_class: e "qosClass",
    ephemeral_container_statuses: x "ephemeralContainerStatuses",
    resize: e "resize",
    resource_claim_statuses: x "resourceClaimStatuses",
    extended_resource_claim_status: x "extendedResourceClaimStatus",
    allocated_resources: x "allocatedResources",
    resources: x "resources",
});
conv!(core::v1::PodTemplateSpec {
    metadata: e "metadata",
    spec: e "spec",
});
conv!(core::v1::Container {
    name: e "name",
    image: e "image",
    command: e "command",
    args: e "args",
    working_dir: e "workingDir",
    ports: e "ports",
    env_from: e "envFrom",
    env: e "env",
    resources: e "resources",
    resize_policy: x "resizePolicy",
    restart_policy: p "restartPolicy",
    restart_policy_rules: x "restartPolicyRules",
    volume_mounts: e "volumeMounts",
    volume_devices: x "volumeDevices",
    liveness_probe: p "livenessProbe",
    readiness_probe: p "readinessProbe",
    startup_probe: p "startupProbe",
    lifecycle: x "lifecycle",
    termination_message_path: e "terminationMessagePath",
    termination_message_policy: e "terminationMessagePolicy",
    image_pull_policy: e "imagePullPolicy",
    security_context: x "securityContext",
    stdin: e "stdin",
    stdin_once: e "stdinOnce",
    tty: e "tty",
});
conv!(core::v1::ContainerPort {
    name: e "name",
    host_port: e "hostPort",
    container_port: e "containerPort",
    protocol: e "protocol",
    host_ip: e "hostIP",
});
conv!(core::v1::EnvVar {
    name: e "name",
    value: e "value",
    value_from: p "valueFrom",
});
conv!(core::v1::EnvVarSource {
    field_ref: p "fieldRef",
    resource_field_ref: p "resourceFieldRef",
    config_map_key_ref: p "configMapKeyRef",
    secret_key_ref: p "secretKeyRef",
    file_key_ref: x "fileKeyRef",
});
conv!(core::v1::ConfigMapKeySelector {
    local_object_reference: i "",
    key: e "key",
    optional: p "optional",
});
conv!(core::v1::SecretKeySelector {
    local_object_reference: i "",
    key: e "key",
    optional: p "optional",
});
conv!(core::v1::ObjectFieldSelector {
    api_version: e "apiVersion",
    field_path: e "fieldPath",
});
conv!(core::v1::ResourceFieldSelector {
    container_name: e "containerName",
    resource: e "resource",
    divisor: e "divisor",
});
conv!(core::v1::EnvFromSource {
    prefix: e "prefix",
    config_map_ref: p "configMapRef",
    secret_ref: p "secretRef",
});
conv!(core::v1::ConfigMapEnvSource {
    local_object_reference: i "",
    optional: p "optional",
});
conv!(core::v1::SecretEnvSource {
    local_object_reference: i "",
    optional: p "optional",
});
conv!(core::v1::ResourceRequirements {
    limits: e "limits",
    requests: e "requests",
    claims: x "claims",
});
conv!(core::v1::VolumeMount {
    name: e "name",
    read_only: e "readOnly",
    recursive_read_only: p "recursiveReadOnly",
    mount_path: e "mountPath",
    sub_path: e "subPath",
    mount_propagation: p "mountPropagation",
    sub_path_expr: e "subPathExpr",
});
conv!(core::v1::Volume {
    name: e "name",
    volume_source: i "",
});
conv!(core::v1::VolumeSource {
    host_path: p "hostPath",
    empty_dir: p "emptyDir",
    gce_persistent_disk: x "gcePersistentDisk",
    aws_elastic_block_store: x "awsElasticBlockStore",
    git_repo: x "gitRepo",
    secret: p "secret",
    nfs: x "nfs",
    iscsi: x "iscsi",
    glusterfs: x "glusterfs",
    persistent_volume_claim: p "persistentVolumeClaim",
    rbd: x "rbd",
    flex_volume: x "flexVolume",
    cinder: x "cinder",
    cephfs: x "cephfs",
    flocker: x "flocker",
    downward_api: x "downwardAPI",
    fc: x "fc",
    azure_file: x "azureFile",
    config_map: p "configMap",
    vsphere_volume: x "vsphereVolume",
    quobyte: x "quobyte",
    azure_disk: x "azureDisk",
    photon_persistent_disk: x "photonPersistentDisk",
    projected: x "projected",
    portworx_volume: x "portworxVolume",
    scale_io: x "scaleIO",
    storageos: x "storageos",
    csi: x "csi",
    ephemeral: x "ephemeral",
    image: x "image",
});
conv!(core::v1::EmptyDirVolumeSource {
    medium: e "medium",
    size_limit: p "sizeLimit",
});
conv!(core::v1::ConfigMapVolumeSource {
    local_object_reference: i "",
    items: e "items",
    default_mode: p "defaultMode",
    optional: p "optional",
});
conv!(core::v1::SecretVolumeSource {
    secret_name: e "secretName",
    items: e "items",
    default_mode: p "defaultMode",
    optional: p "optional",
});
conv!(core::v1::HostPathVolumeSource {
    path: e "path",
    r#type: p "type",
});
conv!(core::v1::PersistentVolumeClaimVolumeSource {
    claim_name: e "claimName",
    read_only: e "readOnly",
});
conv!(core::v1::KeyToPath {
    key: e "key",
    path: e "path",
    mode: p "mode",
});
conv!(core::v1::Probe {
    handler: i "",
    initial_delay_seconds: e "initialDelaySeconds",
    timeout_seconds: e "timeoutSeconds",
    period_seconds: e "periodSeconds",
    success_threshold: e "successThreshold",
    failure_threshold: e "failureThreshold",
    termination_grace_period_seconds: p "terminationGracePeriodSeconds",
});
conv!(core::v1::ProbeHandler {
    exec: p "exec",
    http_get: p "httpGet",
    tcp_socket: p "tcpSocket",
    grpc: p "grpc",
});
conv!(core::v1::ExecAction {
    command: e "command",
});
conv!(core::v1::HttpGetAction {
    path: e "path",
    port: e "port",
    host: e "host",
    scheme: e "scheme",
    http_headers: e "httpHeaders",
});
conv!(core::v1::HttpHeader {
    name: e "name",
    value: e "value",
});
conv!(core::v1::TcpSocketAction {
    port: e "port",
    host: e "host",
});
conv!(core::v1::GrpcAction {
    port: e "port",
    service: p "service",
});
conv!(core::v1::Toleration {
    key: e "key",
    operator: e "operator",
    value: e "value",
    effect: e "effect",
    toleration_seconds: p "tolerationSeconds",
});
conv!(apps::v1::Deployment {
    metadata: e "metadata",
    spec: e "spec",
    status: e "status",
});
conv!(apps::v1::DeploymentSpec {
    replicas: p "replicas",
    selector: p "selector",
    template: e "template",
    strategy: e "strategy",
    min_ready_seconds: e "minReadySeconds",
    revision_history_limit: p "revisionHistoryLimit",
    paused: e "paused",
    progress_deadline_seconds: p "progressDeadlineSeconds",
});
conv!(apps::v1::DeploymentStrategy {
    r#type: e "type",
    rolling_update: p "rollingUpdate",
});
conv!(apps::v1::RollingUpdateDeployment {
    max_unavailable: p "maxUnavailable",
    max_surge: p "maxSurge",
});
conv!(apps::v1::DeploymentStatus {
    observed_generation: e "observedGeneration",
    replicas: e "replicas",
    updated_replicas: e "updatedReplicas",
    ready_replicas: e "readyReplicas",
    available_replicas: e "availableReplicas",
    unavailable_replicas: e "unavailableReplicas",
    terminating_replicas: p "terminatingReplicas",
    conditions: x "conditions",
    collision_count: p "collisionCount",
});
conv!(policy::v1::Eviction {
    metadata: e "metadata",
    delete_options: p "deleteOptions",
});
conv!(policy::v1::PodDisruptionBudget {
    metadata: e "metadata",
    spec: e "spec",
    status: e "status",
});
conv!(policy::v1::PodDisruptionBudgetSpec {
    min_available: p "minAvailable",
    selector: p "selector",
    max_unavailable: p "maxUnavailable",
    unhealthy_pod_eviction_policy: p "unhealthyPodEvictionPolicy",
});
conv!(policy::v1::PodDisruptionBudgetStatus {
    observed_generation: e "observedGeneration",
    disrupted_pods: x "disruptedPods",
    disruptions_allowed: e "disruptionsAllowed",
    current_healthy: e "currentHealthy",
    desired_healthy: e "desiredHealthy",
    expected_pods: e "expectedPods",
    conditions: x "conditions",
});
conv!(rbac::v1::Role {
    metadata: e "metadata",
    rules: e "rules",
});
conv!(rbac::v1::ClusterRole {
    metadata: e "metadata",
    rules: e "rules",
    aggregation_rule: p "aggregationRule",
});
conv!(rbac::v1::PolicyRule {
    verbs: e "verbs",
    api_groups: e "apiGroups",
    resources: e "resources",
    resource_names: e "resourceNames",
    non_resource_ur_ls: e "nonResourceURLs",
});
conv!(rbac::v1::AggregationRule {
    cluster_role_selectors: e "clusterRoleSelectors",
});
conv!(rbac::v1::RoleBinding {
    metadata: e "metadata",
    subjects: e "subjects",
    role_ref: e "roleRef",
});
conv!(rbac::v1::ClusterRoleBinding {
    metadata: e "metadata",
    subjects: e "subjects",
    role_ref: e "roleRef",
});
conv!(rbac::v1::Subject {
    kind: e "kind",
    api_group: e "apiGroup",
    name: e "name",
    namespace: e "namespace",
});
conv!(rbac::v1::RoleRef {
    api_group: e "apiGroup",
    kind: e "kind",
    name: e "name",
});
conv!(batch::v1::Job {
    metadata: e "metadata",
    spec: e "spec",
    status: e "status",
});
conv!(batch::v1::JobSpec {
    parallelism: p "parallelism",
    completions: p "completions",
    active_deadline_seconds: p "activeDeadlineSeconds",
    pod_failure_policy: x "podFailurePolicy",
    success_policy: x "successPolicy",
    backoff_limit: p "backoffLimit",
    backoff_limit_per_index: p "backoffLimitPerIndex",
    max_failed_indexes: p "maxFailedIndexes",
    selector: p "selector",
    manual_selector: p "manualSelector",
    template: e "template",
    ttl_seconds_after_finished: p "ttlSecondsAfterFinished",
    completion_mode: p "completionMode",
    suspend: p "suspend",
    pod_replacement_policy: p "podReplacementPolicy",
    managed_by: p "managedBy",
});
conv!(batch::v1::JobStatus {
    conditions: x "conditions",
    start_time: p "startTime",
    completion_time: p "completionTime",
    active: e "active",
    succeeded: e "succeeded",
    failed: e "failed",
    terminating: p "terminating",
    completed_indexes: e "completedIndexes",
    failed_indexes: p "failedIndexes",
    uncounted_terminated_pods: x "uncountedTerminatedPods",
    ready: p "ready",
});
conv!(batch::v1::CronJob {
    metadata: e "metadata",
    spec: e "spec",
    status: e "status",
});
conv!(batch::v1::CronJobSpec {
    schedule: e "schedule",
    time_zone: p "timeZone",
    starting_deadline_seconds: p "startingDeadlineSeconds",
    concurrency_policy: e "concurrencyPolicy",
    suspend: p "suspend",
    job_template: e "jobTemplate",
    successful_jobs_history_limit: p "successfulJobsHistoryLimit",
    failed_jobs_history_limit: p "failedJobsHistoryLimit",
});
conv!(batch::v1::JobTemplateSpec {
    metadata: e "metadata",
    spec: e "spec",
});
conv!(batch::v1::CronJobStatus {
    active: x "active",
    last_schedule_time: p "lastScheduleTime",
    last_successful_time: p "lastSuccessfulTime",
});

conv!(scheduling::v1::PriorityClass {
    metadata: e "metadata",
    value: k "value",
    global_default: e "globalDefault",
    description: e "description",
    preemption_policy: p "preemptionPolicy",
});
conv!(autoscaling::v2::HorizontalPodAutoscaler {
    metadata: e "metadata",
    spec: e "spec",
    status: e "status",
});
conv!(autoscaling::v2::HorizontalPodAutoscalerSpec {
    scale_target_ref: e "scaleTargetRef",
    min_replicas: p "minReplicas",
    max_replicas: k "maxReplicas",
    metrics: e "metrics",
    behavior: x "behavior",
});
conv!(autoscaling::v2::HorizontalPodAutoscalerStatus {
    observed_generation: p "observedGeneration",
    last_scale_time: p "lastScaleTime",
    current_replicas: e "currentReplicas",
    desired_replicas: k "desiredReplicas",
    current_metrics: x "currentMetrics",
    conditions: x "conditions",
});
conv!(autoscaling::v2::CrossVersionObjectReference {
    kind: e "kind",
    name: e "name",
    api_version: e "apiVersion",
});
conv!(autoscaling::v2::MetricSpec {
    r#type: e "type",
    object: x "object",
    pods: x "pods",
    resource: p "resource",
    container_resource: x "containerResource",
    external: x "external",
});
conv!(autoscaling::v2::ResourceMetricSource {
    name: e "name",
    target: e "target",
});
conv!(autoscaling::v2::MetricTarget {
    r#type: e "type",
    value: p "value",
    average_value: p "averageValue",
    average_utilization: p "averageUtilization",
});
conv!(networking::v1::Ingress {
    metadata: e "metadata",
    spec: e "spec",
    status: e "status",
});
conv!(networking::v1::IngressSpec {
    ingress_class_name: p "ingressClassName",
    default_backend: p "defaultBackend",
    tls: e "tls",
    rules: e "rules",
});
conv!(networking::v1::IngressStatus {
    load_balancer: x "loadBalancer",
});
conv!(networking::v1::IngressBackend {
    service: p "service",
    resource: x "resource",
});
conv!(networking::v1::IngressServiceBackend {
    name: e "name",
    port: e "port",
});
conv!(networking::v1::ServiceBackendPort {
    name: e "name",
    number: e "number",
});
conv!(networking::v1::IngressTls {
    hosts: e "hosts",
    secret_name: e "secretName",
});
conv!(networking::v1::IngressRule {
    host: e "host",
    ingress_rule_value: i "",
});
conv!(networking::v1::IngressRuleValue {
    http: p "http",
});
conv!(networking::v1::HttpIngressRuleValue {
    paths: e "paths",
});
conv!(networking::v1::HttpIngressPath {
    path: e "path",
    path_type: p "pathType",
    backend: e "backend",
});
