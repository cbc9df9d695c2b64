//! The resource types the sandbox serves, with what discovery reports about them.

/// One served resource (or subresource) type.
#[derive(Debug)]
pub struct ResourceInfo {
    /// API group; "" for the core group.
    pub group: &'static str,
    /// Served version.
    pub version: &'static str,
    /// Plural resource name, e.g. `pods`.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind, e.g. `Pod`.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names kubectl accepts (`po`, `no`, ...).
    pub short_names: &'static [&'static str],
    /// Subresources listed in discovery as `plural/sub`, with their kind.
    pub subresources: &'static [(&'static str, &'static str)],
    /// Table key: `plural.group`.
    key: &'static str,
}

impl ResourceInfo {
    /// `plural.group` (or just `plural` for core), unique per table.
    #[must_use]
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// `v1` or `group/version`.
    #[must_use]
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `PodList` and friends.
    #[must_use]
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

macro_rules! resource {
    ($group:literal, $version:literal, $plural:literal, $singular:literal, $kind:literal, $ns:literal, [$($short:literal),*], [$(($sub:literal, $subkind:literal)),*]) => {
        ResourceInfo {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: &[$($short),*],
            subresources: &[$(($sub, $subkind)),*],
            key: if $group.is_empty() { $plural } else { concat!($plural, ".", $group) },
        }
    };
}

/// Every resource the sandbox serves.
pub static RESOURCES: &[ResourceInfo] = &[
    resource!(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        ["ns"],
        [("status", "Namespace"), ("finalize", "Namespace")]
    ),
    resource!(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        false,
        ["no"],
        [("status", "Node"), ("proxy", "NodeProxyOptions")]
    ),
    resource!(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        true,
        ["po"],
        [
            ("status", "Pod"),
            ("eviction", "Eviction"),
            ("proxy", "PodProxyOptions"),
            ("log", "Pod"),
            ("binding", "Binding")
        ]
    ),
    resource!("", "v1", "events", "event", "Event", true, ["ev"], []),
    resource!(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        ["svc"],
        [("status", "Service"), ("proxy", "ServiceProxyOptions")]
    ),
    resource!(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        ["ep"],
        []
    ),
    resource!(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        ["cm"],
        []
    ),
    resource!("", "v1", "secrets", "secret", "Secret", true, [], []),
    resource!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        ["sa"],
        []
    ),
    resource!(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        ["pvc"],
        [("status", "PersistentVolumeClaim")]
    ),
    resource!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        ["deploy"],
        [("status", "Deployment"), ("scale", "Scale")]
    ),
    resource!(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        ["rs"],
        [("status", "ReplicaSet"), ("scale", "Scale")]
    ),
    resource!(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        ["sts"],
        [("status", "StatefulSet"), ("scale", "Scale")]
    ),
    resource!(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        ["ds"],
        [("status", "DaemonSet")]
    ),
    resource!(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        true,
        [],
        []
    ),
    resource!(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        ["pdb"],
        [("status", "PodDisruptionBudget")]
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        true,
        [],
        []
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        [],
        []
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        [],
        []
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        [],
        []
    ),
    resource!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        [],
        []
    ),
    resource!(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        ["hpa"],
        [("status", "HorizontalPodAutoscaler")]
    ),
    resource!(
        "batch",
        "v1",
        "jobs",
        "job",
        "Job",
        true,
        [],
        [("status", "Job")]
    ),
    resource!(
        "batch",
        "v1",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        ["cj"],
        [("status", "CronJob")]
    ),
    resource!(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        ["ing"],
        [("status", "Ingress")]
    ),
    resource!(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        ["netpol"],
        []
    ),
    resource!(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "ingressclass",
        "IngressClass",
        false,
        [],
        []
    ),
    resource!(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        false,
        ["sc"],
        []
    ),
    resource!(
        "storage.k8s.io",
        "v1",
        "csidrivers",
        "csidriver",
        "CSIDriver",
        false,
        [],
        []
    ),
    resource!(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        ["crd", "crds"],
        [("status", "CustomResourceDefinition")]
    ),
    resource!(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        false,
        ["pc"],
        []
    ),
    // Reviews: create-only, answered by `api::authz` and never stored.
    resource!(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "",
        "SelfSubjectAccessReview",
        false,
        [],
        []
    ),
    resource!(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "",
        "SelfSubjectReview",
        false,
        [],
        []
    ),
    // kubectl 1.27's `auth whoami` knows only the beta.
    resource!(
        "authentication.k8s.io",
        "v1beta1",
        "selfsubjectreviews",
        "",
        "SelfSubjectReview",
        false,
        [],
        []
    ),
    resource!(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        true,
        ["ev"],
        []
    ),
];

/// Resources clients may only create (reviews), which discovery lists with the `create` verb.
#[must_use]
pub fn create_only(r: &ResourceInfo) -> bool {
    matches!(r.plural, "selfsubjectaccessreviews" | "selfsubjectreviews")
}

/// Every served resource: the built-in table, then registered custom resources.
#[must_use]
pub fn all() -> Vec<&'static ResourceInfo> {
    RESOURCES.iter().chain(custom::all()).collect()
}

/// The resource `plural` in `group` ("" for core).
#[must_use]
pub fn find(group: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .or_else(|| custom::find(|r| r.group == group && r.plural == plural))
}

/// The resource `plural` in `group` at `version` (a resource served at two versions has two
/// entries).
#[must_use]
pub fn find_version(group: &str, plural: &str, version: &str) -> Option<&'static ResourceInfo> {
    let hit = |r: &ResourceInfo| r.group == group && r.plural == plural && r.version == version;
    RESOURCES
        .iter()
        .find(|r| hit(r))
        .or_else(|| custom::find(hit))
}

/// The resource of `kind` in `group` ("" for core).
#[must_use]
pub fn find_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
        .or_else(|| custom::find(|r| r.group == group && r.kind == kind))
}

/// Resources of one group/version, in discovery order.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    all()
        .into_iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// Custom resources, registered from CustomResourceDefinitions (`crate::crds`). Registration is
/// process-wide and never undone: a `ResourceInfo` is `'static`, so each served group/version/
/// plural is leaked once (a handful per test process).
pub mod custom {
    use std::sync::RwLock;

    use super::ResourceInfo;

    static REGISTRY: RwLock<Vec<&'static ResourceInfo>> = RwLock::new(Vec::new());

    fn leak(s: &str) -> &'static str {
        Box::leak(s.to_owned().into_boxed_str())
    }

    /// What a CRD version says about its resource.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Spec {
        /// API group.
        pub group: String,
        /// Served version.
        pub version: String,
        /// Plural.
        pub plural: String,
        /// Singular.
        pub singular: String,
        /// Kind.
        pub kind: String,
        /// Namespaced or cluster-scoped.
        pub namespaced: bool,
        /// Short names.
        pub short_names: Vec<String>,
        /// Whether the `status` subresource is enabled.
        pub status: bool,
    }

    /// Registers `spec` (a no-op when the same group/version/plural is registered) and returns
    /// the resource.
    pub fn register(spec: &Spec) -> &'static ResourceInfo {
        let mut reg = REGISTRY
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = reg
            .iter()
            .find(|r| r.group == spec.group && r.version == spec.version && r.plural == spec.plural)
        {
            return r;
        }
        let short: Vec<&'static str> = spec.short_names.iter().map(|s| leak(s)).collect();
        let kind = leak(&spec.kind);
        let subs: &'static [(&'static str, &'static str)] = if spec.status {
            Box::leak(vec![("status", kind)].into_boxed_slice())
        } else {
            &[]
        };
        let info: &'static ResourceInfo = Box::leak(Box::new(ResourceInfo {
            group: leak(&spec.group),
            version: leak(&spec.version),
            plural: leak(&spec.plural),
            singular: leak(&spec.singular),
            kind,
            namespaced: spec.namespaced,
            short_names: Box::leak(short.into_boxed_slice()),
            subresources: subs,
            key: leak(&format!("{}.{}", spec.plural, spec.group)),
        }));
        reg.push(info);
        info
    }

    /// Every registered custom resource.
    pub fn all() -> Vec<&'static ResourceInfo> {
        REGISTRY
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The first registered resource matching `pred`.
    pub fn find(pred: impl Fn(&ResourceInfo) -> bool) -> Option<&'static ResourceInfo> {
        REGISTRY
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .find(|r| pred(r))
    }
}

/// Well-known resources, so controllers do not repeat lookups by string.
pub mod well_known {
    use super::{RESOURCES, ResourceInfo};

    fn by_key(key: &str) -> &'static ResourceInfo {
        RESOURCES
            .iter()
            .find(|r| r.key == key)
            .expect("well-known resource is in RESOURCES")
    }

    /// core/v1 namespaces.
    #[must_use]
    pub fn namespaces() -> &'static ResourceInfo {
        by_key("namespaces")
    }
    /// core/v1 nodes.
    #[must_use]
    pub fn nodes() -> &'static ResourceInfo {
        by_key("nodes")
    }
    /// core/v1 pods.
    #[must_use]
    pub fn pods() -> &'static ResourceInfo {
        by_key("pods")
    }
    /// core/v1 events.
    #[must_use]
    pub fn events() -> &'static ResourceInfo {
        by_key("events")
    }
    /// apps/v1 deployments.
    #[must_use]
    pub fn deployments() -> &'static ResourceInfo {
        by_key("deployments.apps")
    }
    /// apps/v1 replicasets.
    #[must_use]
    pub fn replicasets() -> &'static ResourceInfo {
        by_key("replicasets.apps")
    }
    /// apps/v1 statefulsets.
    #[must_use]
    pub fn statefulsets() -> &'static ResourceInfo {
        by_key("statefulsets.apps")
    }
    /// apps/v1 daemonsets.
    #[must_use]
    pub fn daemonsets() -> &'static ResourceInfo {
        by_key("daemonsets.apps")
    }
    /// policy/v1 poddisruptionbudgets.
    #[must_use]
    pub fn pdbs() -> &'static ResourceInfo {
        by_key("poddisruptionbudgets.policy")
    }
    /// coordination.k8s.io/v1 leases.
    #[must_use]
    pub fn leases() -> &'static ResourceInfo {
        by_key("leases.coordination.k8s.io")
    }
}
