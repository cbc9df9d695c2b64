//! Descheduler policies as a drop-in: v1alpha1 (`strategies.PodLifeTime`, or just the
//! `PodLifeTime:` block of one) and v1alpha2 (`profiles` with PodLifeTime and DefaultEvictor
//! args). Parsing is strict: a field we do not implement is an error naming it, never silently
//! ignored, because an ignored `nodeFit` or `ownerKinds` would evict pods the user meant to keep.
//! Two exceptions follow the descheduler itself: a v1alpha1 PodLifeTime with `enabled: false`
//! means nothing to do, and its `params.nodeFit`, which the descheduler's conversion drops for
//! PodLifeTime, is accepted with a warning.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde_json::Value;

use opsteps::selector::Selector;

/// What a policy sets; `None` leaves the flag's value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicySettings {
    /// `maxPodLifeTimeSeconds`.
    pub max_pod_lifetime_seconds: Option<u64>,
    /// `states` (and v1alpha1 `podStatusPhases`).
    pub states: Vec<String>,
    /// `includingInitContainers`.
    pub including_init_containers: bool,
    /// `includingEphemeralContainers`.
    pub including_ephemeral_containers: bool,
    /// `namespaces.include`.
    pub namespaces: Vec<String>,
    /// `namespaces.exclude`.
    pub exclude_namespaces: Vec<String>,
    /// `labelSelector`, validated.
    pub selector: Option<Selector>,
    /// `maxNoOfPodsToEvictPerNode`.
    pub max_per_node: Option<u32>,
    /// `maxNoOfPodsToEvictPerNamespace`.
    pub max_per_namespace: Option<u32>,
    /// `maxNoOfPodsToEvictTotal`.
    pub max_total: Option<u32>,
    /// DefaultEvictor switches.
    pub evict_local_storage_pods: bool,
    /// `evictDaemonSetPods`.
    pub evict_daemonset_pods: bool,
    /// `evictSystemCriticalPods`.
    pub evict_system_critical_pods: bool,
    /// `evictFailedBarePods`.
    pub evict_failed_bare_pods: bool,
    /// `ignorePvcPods`.
    pub ignore_pvc_pods: bool,
    /// `ignorePodsWithoutPDB`.
    pub ignore_pods_without_pdb: bool,
    /// `minReplicas`.
    pub min_replicas: Option<u32>,
    /// `minPodAge`, seconds.
    pub min_pod_age_seconds: Option<u64>,
    /// `priorityThreshold.value` / `thresholdPriority`.
    pub priority_threshold: Option<i32>,
    /// `priorityThreshold.name` / `thresholdPriorityClassName`.
    pub priority_threshold_class: Option<String>,
    /// The policy names PodLifeTime but does not enable it (v1alpha1 `enabled: false`): the
    /// descheduler does nothing, and so does the step.
    pub disabled: bool,
    /// Fields accepted but without effect, as in the descheduler (logged and reported).
    pub warnings: Vec<String>,
}

/// Why a policy cannot be used (always exit 2).
#[derive(Debug, thiserror::Error)]
#[error("policy {path}: {reason}")]
pub struct PolicyError {
    path: String,
    reason: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Namespaces {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

// ---- v1alpha1 ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct V1Alpha1 {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    evict_local_storage_pods: Option<bool>,
    #[serde(default)]
    evict_daemon_set_pods: Option<bool>,
    #[serde(default)]
    evict_system_critical_pods: Option<bool>,
    #[serde(default)]
    evict_failed_bare_pods: Option<bool>,
    #[serde(default)]
    ignore_pvc_pods: Option<bool>,
    #[serde(default)]
    max_no_of_pods_to_evict_per_node: Option<u32>,
    #[serde(default)]
    max_no_of_pods_to_evict_per_namespace: Option<u32>,
    #[serde(default)]
    max_no_of_pods_to_evict_total: Option<u32>,
    #[serde(default)]
    strategies: BTreeMap<String, Strategy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Strategy {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    params: Option<V1Params>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct V1Params {
    #[serde(default)]
    pod_life_time: Option<V1PodLifeTime>,
    #[serde(default)]
    namespaces: Option<Namespaces>,
    #[serde(default)]
    label_selector: Option<LabelSelector>,
    #[serde(default)]
    threshold_priority: Option<i32>,
    #[serde(default)]
    threshold_priority_class_name: Option<String>,
    #[serde(default)]
    node_fit: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct V1PodLifeTime {
    #[serde(default)]
    max_pod_life_time_seconds: Option<i64>,
    #[serde(default)]
    states: Vec<String>,
    #[serde(default)]
    pod_status_phases: Vec<String>,
}

// ---- v1alpha2 ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct V1Alpha2 {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    max_no_of_pods_to_evict_per_node: Option<u32>,
    #[serde(default)]
    max_no_of_pods_to_evict_per_namespace: Option<u32>,
    #[serde(default)]
    max_no_of_pods_to_evict_total: Option<u32>,
    #[serde(default)]
    profiles: Vec<Profile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    #[serde(default)]
    plugin_config: Vec<PluginConfig>,
    #[serde(default)]
    plugins: BTreeMap<String, PluginSet>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PluginSet {
    #[serde(default)]
    enabled: Vec<String>,
    #[serde(default)]
    disabled: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PluginConfig {
    name: String,
    #[serde(default)]
    args: Value,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PodLifeTimeArgs {
    #[serde(default)]
    max_pod_life_time_seconds: Option<i64>,
    #[serde(default)]
    states: Vec<String>,
    #[serde(default)]
    namespaces: Option<Namespaces>,
    #[serde(default)]
    label_selector: Option<LabelSelector>,
    #[serde(default)]
    including_init_containers: bool,
    #[serde(default)]
    including_ephemeral_containers: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PriorityThreshold {
    #[serde(default)]
    value: Option<i32>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PodProtections {
    #[serde(default)]
    default_disabled: Vec<String>,
    #[serde(default)]
    extra_enabled: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DefaultEvictorArgs {
    #[serde(default)]
    evict_local_storage_pods: Option<bool>,
    #[serde(default)]
    evict_daemon_set_pods: Option<bool>,
    #[serde(default)]
    evict_system_critical_pods: Option<bool>,
    #[serde(default)]
    ignore_pvc_pods: Option<bool>,
    #[serde(default)]
    evict_failed_bare_pods: Option<bool>,
    #[serde(default, rename = "ignorePodsWithoutPDB")]
    ignore_pods_without_pdb: Option<bool>,
    #[serde(default)]
    min_replicas: Option<u32>,
    #[serde(default)]
    min_pod_age: Option<String>,
    #[serde(default)]
    priority_threshold: Option<PriorityThreshold>,
    #[serde(default)]
    node_fit: Option<bool>,
    #[serde(default)]
    pod_protections: Option<PodProtections>,
}

fn unsupported(field: &str, why: &str) -> String {
    format!("field {field} is not supported by evict-old-pods ({why}); remove it")
}

/// Parses a policy file's text. `path` names it in messages.
pub fn parse(path: &str, text: &str) -> Result<PolicySettings, PolicyError> {
    let err = |reason: String| PolicyError {
        path: path.to_owned(),
        reason,
    };
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| err(format!("not YAML: {e}")))?;
    let Value::Object(map) = &doc else {
        return Err(err("expected a mapping at the top level".into()));
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if let Some(kind) = map.get("kind").and_then(Value::as_str)
        && kind != "DeschedulerPolicy"
    {
        return Err(err(format!("kind {kind:?}: expected DeschedulerPolicy")));
    }
    let shape = |e: serde_json::Error| err(format!("unsupported or unknown field: {e}"));
    match api_version {
        "descheduler/v1alpha2" => {
            let p: V1Alpha2 = serde_json::from_value(doc.clone()).map_err(shape)?;
            from_v1alpha2(p).map_err(err)
        }
        "descheduler/v1alpha1" => {
            let p: V1Alpha1 = serde_json::from_value(doc.clone()).map_err(shape)?;
            from_v1alpha1(p).map_err(err)
        }
        "" if map.contains_key("profiles") => {
            let p: V1Alpha2 = serde_json::from_value(doc.clone()).map_err(shape)?;
            from_v1alpha2(p).map_err(err)
        }
        "" if map.contains_key("strategies") => {
            let p: V1Alpha1 = serde_json::from_value(doc.clone()).map_err(shape)?;
            from_v1alpha1(p).map_err(err)
        }
        // The block people paste from a v1alpha1 policy: `PodLifeTime: {enabled, params}`.
        "" if map.contains_key("PodLifeTime") => {
            let strategies: BTreeMap<String, Strategy> =
                serde_json::from_value(doc.clone()).map_err(shape)?;
            from_v1alpha1(V1Alpha1 {
                api_version: None,
                kind: None,
                evict_local_storage_pods: None,
                evict_daemon_set_pods: None,
                evict_system_critical_pods: None,
                evict_failed_bare_pods: None,
                ignore_pvc_pods: None,
                max_no_of_pods_to_evict_per_node: None,
                max_no_of_pods_to_evict_per_namespace: None,
                max_no_of_pods_to_evict_total: None,
                strategies,
            })
            .map_err(err)
        }
        "" => Err(err(
            "expected apiVersion descheduler/v1alpha1 or descheduler/v1alpha2, `strategies`, `profiles`, or a `PodLifeTime:` block".into(),
        )),
        other => Err(err(format!(
            "apiVersion {other:?}: expected descheduler/v1alpha1 or descheduler/v1alpha2"
        ))),
    }
}

fn lifetime(v: Option<i64>, field: &str) -> Result<Option<u64>, String> {
    match v {
        Some(n) if n < 0 => Err(format!("{field} is {n}: it must not be negative")),
        Some(n) => Ok(Some(n as u64)),
        None => Ok(None),
    }
}

fn namespaces(out: &mut PolicySettings, ns: Option<Namespaces>, field: &str) -> Result<(), String> {
    if let Some(ns) = ns {
        if !ns.include.is_empty() && !ns.exclude.is_empty() {
            return Err(format!(
                "{field}: only one of include and exclude can be set"
            ));
        }
        out.namespaces = ns.include;
        out.exclude_namespaces = ns.exclude;
    }
    Ok(())
}

fn selector(ls: Option<&LabelSelector>, field: &str) -> Result<Option<Selector>, String> {
    ls.map(|ls| Selector::from_label_selector(ls).map_err(|e| format!("{field}: {e}")))
        .transpose()
}

fn from_v1alpha1(p: V1Alpha1) -> Result<PolicySettings, String> {
    let _ = (p.api_version, p.kind);
    let mut out = PolicySettings {
        evict_local_storage_pods: p.evict_local_storage_pods.unwrap_or(false),
        evict_daemonset_pods: p.evict_daemon_set_pods.unwrap_or(false),
        evict_system_critical_pods: p.evict_system_critical_pods.unwrap_or(false),
        evict_failed_bare_pods: p.evict_failed_bare_pods.unwrap_or(false),
        ignore_pvc_pods: p.ignore_pvc_pods.unwrap_or(false),
        max_per_node: p.max_no_of_pods_to_evict_per_node,
        max_per_namespace: p.max_no_of_pods_to_evict_per_namespace,
        max_total: p.max_no_of_pods_to_evict_total,
        ..PolicySettings::default()
    };
    let mut found = false;
    for (name, s) in p.strategies {
        if name != "PodLifeTime" {
            if s.enabled {
                return Err(unsupported(
                    &format!("strategies.{name}"),
                    "only PodLifeTime is implemented",
                ));
            }
            continue;
        }
        found = true;
        if !s.enabled {
            // The descheduler converts only enabled strategies: nothing to do.
            out.disabled = true;
            continue;
        }
        let params = s.params.ok_or("strategies.PodLifeTime.params is missing")?;
        if params.node_fit == Some(true) {
            // The descheduler's v1alpha1 conversion drops nodeFit for PodLifeTime.
            out.warnings.push(
                "strategies.PodLifeTime.params.nodeFit is ignored, as the descheduler ignores it for PodLifeTime".into(),
            );
        }
        let plt = params
            .pod_life_time
            .ok_or("strategies.PodLifeTime.params.podLifeTime is missing")?;
        out.max_pod_lifetime_seconds = lifetime(
            plt.max_pod_life_time_seconds,
            "strategies.PodLifeTime.params.podLifeTime.maxPodLifeTimeSeconds",
        )?;
        out.states = plt.states;
        out.states.extend(plt.pod_status_phases);
        namespaces(
            &mut out,
            params.namespaces,
            "strategies.PodLifeTime.params.namespaces",
        )?;
        out.selector = selector(
            params.label_selector.as_ref(),
            "strategies.PodLifeTime.params.labelSelector",
        )?;
        out.priority_threshold = params.threshold_priority;
        out.priority_threshold_class = params.threshold_priority_class_name;
    }
    if !found {
        return Err("no PodLifeTime strategy in the policy".into());
    }
    Ok(out)
}

fn from_v1alpha2(p: V1Alpha2) -> Result<PolicySettings, String> {
    let _ = (p.api_version, p.kind);
    let mut out = PolicySettings {
        max_per_node: p.max_no_of_pods_to_evict_per_node,
        max_per_namespace: p.max_no_of_pods_to_evict_per_namespace,
        max_total: p.max_no_of_pods_to_evict_total,
        ..PolicySettings::default()
    };
    let [profile] = p.profiles.as_slice() else {
        return Err(format!(
            "expected exactly one profile, found {}; run one step per profile",
            p.profiles.len()
        ));
    };
    for (ext, set) in &profile.plugins {
        let others: Vec<&String> = set
            .enabled
            .iter()
            .filter(|n| !matches!(n.as_str(), "PodLifeTime" | "DefaultEvictor"))
            .collect();
        if let Some(o) = others.first() {
            return Err(unsupported(
                &format!("profiles[0].plugins.{ext}.enabled: {o}"),
                "only PodLifeTime and DefaultEvictor are implemented",
            ));
        }
        if !set.disabled.is_empty() && ext != "deschedule" {
            return Err(unsupported(
                &format!("profiles[0].plugins.{ext}.disabled"),
                "DefaultEvictor cannot be disabled",
            ));
        }
    }
    let enabled = profile
        .plugins
        .get("deschedule")
        .is_some_and(|s| s.enabled.iter().any(|n| n == "PodLifeTime"));
    if !enabled && !profile.plugins.is_empty() {
        return Err("profiles[0].plugins.deschedule.enabled does not list PodLifeTime".into());
    }
    let mut found = false;
    for pc in &profile.plugin_config {
        let field = format!("profiles[0].pluginConfig[{}].args", pc.name);
        let shape = |e: serde_json::Error| format!("{field}: unsupported or unknown field: {e}");
        let args = if pc.args.is_null() {
            Value::Object(serde_json::Map::new())
        } else {
            pc.args.clone()
        };
        match pc.name.as_str() {
            "PodLifeTime" => {
                found = true;
                let a: PodLifeTimeArgs = serde_json::from_value(args).map_err(shape)?;
                out.max_pod_lifetime_seconds = lifetime(
                    a.max_pod_life_time_seconds,
                    &format!("{field}.maxPodLifeTimeSeconds"),
                )?;
                out.states = a.states;
                out.including_init_containers = a.including_init_containers;
                out.including_ephemeral_containers = a.including_ephemeral_containers;
                namespaces(&mut out, a.namespaces, &format!("{field}.namespaces"))?;
                out.selector =
                    selector(a.label_selector.as_ref(), &format!("{field}.labelSelector"))?;
            }
            "DefaultEvictor" => default_evictor(&mut out, args, &field)?,
            other => {
                return Err(unsupported(
                    &format!("profiles[0].pluginConfig[{other}]"),
                    "only PodLifeTime and DefaultEvictor are implemented",
                ));
            }
        }
    }
    if !found {
        return Err("profiles[0].pluginConfig has no PodLifeTime args".into());
    }
    Ok(out)
}

fn default_evictor(out: &mut PolicySettings, args: Value, field: &str) -> Result<(), String> {
    let a: DefaultEvictorArgs = serde_json::from_value(args)
        .map_err(|e| format!("{field}: unsupported or unknown field: {e}"))?;
    if a.node_fit == Some(true) {
        return Err(unsupported(
            &format!("{field}.nodeFit"),
            "no scheduling simulation",
        ));
    }
    let has_protections = a
        .pod_protections
        .as_ref()
        .is_some_and(|p| !p.default_disabled.is_empty() || !p.extra_enabled.is_empty());
    if let Some(pp) = a.pod_protections {
        for d in &pp.default_disabled {
            match d.as_str() {
                "PodsWithLocalStorage" => out.evict_local_storage_pods = true,
                "DaemonSetPods" => out.evict_daemonset_pods = true,
                "SystemCriticalPods" => out.evict_system_critical_pods = true,
                "FailedBarePods" => out.evict_failed_bare_pods = true,
                other => {
                    return Err(unsupported(
                        &format!("{field}.podProtections.defaultDisabled: {other}"),
                        "known: PodsWithLocalStorage, DaemonSetPods, SystemCriticalPods, FailedBarePods",
                    ));
                }
            }
        }
        for e in &pp.extra_enabled {
            match e.as_str() {
                "PodsWithPVC" => out.ignore_pvc_pods = true,
                "PodsWithoutPDB" => out.ignore_pods_without_pdb = true,
                other => {
                    return Err(unsupported(
                        &format!("{field}.podProtections.extraEnabled: {other}"),
                        "known: PodsWithPVC, PodsWithoutPDB",
                    ));
                }
            }
        }
    }
    // The deprecated booleans apply only when podProtections is empty, as in the descheduler.
    if !has_protections {
        out.evict_local_storage_pods = a.evict_local_storage_pods.unwrap_or(false);
        out.evict_daemonset_pods = a.evict_daemon_set_pods.unwrap_or(false);
        out.evict_system_critical_pods = a.evict_system_critical_pods.unwrap_or(false);
        out.evict_failed_bare_pods = a.evict_failed_bare_pods.unwrap_or(false);
        out.ignore_pvc_pods = a.ignore_pvc_pods.unwrap_or(false);
        out.ignore_pods_without_pdb = a.ignore_pods_without_pdb.unwrap_or(false);
    }
    out.min_replicas = a.min_replicas;
    if let Some(age) = a.min_pod_age {
        let d: opsteps::duration::GoDuration =
            age.parse().map_err(|e| format!("{field}.minPodAge: {e}"))?;
        out.min_pod_age_seconds = Some(d.as_secs());
    }
    if let Some(pt) = a.priority_threshold {
        if pt.value.is_some() && pt.name.is_some() {
            return Err(format!(
                "{field}.priorityThreshold: only one of value and name can be set"
            ));
        }
        out.priority_threshold = pt.value;
        out.priority_threshold_class = pt.name;
    }
    Ok(())
}

#[cfg(test)]
/// The policy of issue 6, as users run it today.
pub(crate) const SEED: &str = "PodLifeTime:
  enabled: true
  params:
    podLifeTime:
      maxPodLifeTimeSeconds: 28800
    namespaces:
      include: [\"shop\"]
    labelSelector:
      matchLabels:
        app: web
";

/// The seed policy, for other modules' tests.
#[cfg(test)]
pub(crate) fn tests_seed() -> &'static str {
    SEED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_block_maps_one_to_one() {
        let p = parse("seed.yaml", SEED).unwrap();
        assert_eq!(p.max_pod_lifetime_seconds, Some(28800));
        assert_eq!(p.namespaces, vec!["shop"]);
        assert_eq!(p.selector.unwrap().to_string(), "app=web");
    }

    #[test]
    fn v1alpha1_full_document() {
        let p = parse(
            "p",
            "apiVersion: descheduler/v1alpha1
kind: DeschedulerPolicy
evictLocalStoragePods: true
maxNoOfPodsToEvictPerNode: 2
strategies:
  RemoveDuplicates: {enabled: false}
  PodLifeTime:
    enabled: true
    params:
      podLifeTime: {maxPodLifeTimeSeconds: 60, podStatusPhases: [Pending]}
      thresholdPriority: 1000
",
        )
        .unwrap();
        assert!(p.evict_local_storage_pods);
        assert_eq!(p.max_per_node, Some(2));
        assert_eq!(p.states, vec!["Pending"]);
        assert_eq!(p.priority_threshold, Some(1000));
    }

    #[test]
    fn v1alpha2_profiles() {
        let p = parse(
            "p",
            "apiVersion: descheduler/v1alpha2
kind: DeschedulerPolicy
maxNoOfPodsToEvictTotal: 5
profiles:
  - name: lifetime
    pluginConfig:
      - name: DefaultEvictor
        args:
          evictLocalStoragePods: true
          minReplicas: 2
          minPodAge: 5m
          priorityThreshold: {value: 100}
      - name: PodLifeTime
        args:
          maxPodLifeTimeSeconds: 28800
          states: [Running]
          namespaces: {exclude: [kube-system]}
          labelSelector:
            matchExpressions: [{key: app, operator: In, values: [web, api]}]
    plugins:
      deschedule: {enabled: [PodLifeTime]}
      filter: {enabled: [DefaultEvictor]}
",
        )
        .unwrap();
        assert_eq!(p.max_total, Some(5));
        assert!(p.evict_local_storage_pods);
        assert_eq!(p.min_replicas, Some(2));
        assert_eq!(p.min_pod_age_seconds, Some(300));
        assert_eq!(p.priority_threshold, Some(100));
        assert_eq!(p.exclude_namespaces, vec!["kube-system"]);
        assert_eq!(p.selector.unwrap().to_string(), "app in (web,api)");
        let pp = parse(
            "p",
            "apiVersion: descheduler/v1alpha2
profiles:
  - name: x
    pluginConfig:
      - name: DefaultEvictor
        args:
          evictLocalStoragePods: false
          podProtections: {defaultDisabled: [PodsWithLocalStorage], extraEnabled: [PodsWithPVC]}
      - name: PodLifeTime
        args: {maxPodLifeTimeSeconds: 1}
",
        )
        .unwrap();
        assert!(pp.evict_local_storage_pods && pp.ignore_pvc_pods);
    }

    #[test]
    fn unsupported_fields_are_named() {
        for (doc, field) in [
            (
                "apiVersion: descheduler/v1alpha2\nprofiles:\n  - name: x\n    pluginConfig:\n      - name: PodLifeTime\n        args: {maxPodLifeTimeSeconds: 1, ownerKinds: {include: [ReplicaSet]}}\n",
                "ownerKinds",
            ),
            (
                "apiVersion: descheduler/v1alpha2\nnodeSelector: a=b\nprofiles: []\n",
                "nodeSelector",
            ),
            (
                "apiVersion: descheduler/v1alpha2\nprofiles:\n  - name: x\n    pluginConfig:\n      - name: DefaultEvictor\n        args: {nodeFit: true}\n      - name: PodLifeTime\n        args: {maxPodLifeTimeSeconds: 1}\n",
                "nodeFit",
            ),
            (
                "apiVersion: descheduler/v1alpha2\nprofiles:\n  - name: x\n    pluginConfig:\n      - name: DefaultEvictor\n        args: {noEvictionPolicy: Mandatory}\n      - name: PodLifeTime\n        args: {maxPodLifeTimeSeconds: 1}\n",
                "noEvictionPolicy",
            ),
            (
                "apiVersion: descheduler/v1alpha1\nstrategies:\n  RemoveDuplicates: {enabled: true}\n  PodLifeTime: {enabled: true, params: {podLifeTime: {maxPodLifeTimeSeconds: 1}}}\n",
                "RemoveDuplicates",
            ),
        ] {
            let e = parse("p.yaml", doc).expect_err(field).to_string();
            assert!(e.contains(field) && e.contains("p.yaml"), "{field}: {e}");
        }
    }

    #[test]
    fn v1alpha1_disabled_and_node_fit_are_accepted_as_the_descheduler_does() {
        // enabled: false, without params: nothing to do (no error, no lifetime needed).
        for doc in [
            "PodLifeTime:\n  enabled: false\n",
            "apiVersion: descheduler/v1alpha1\nkind: DeschedulerPolicy\nstrategies:\n  PodLifeTime: {enabled: false, params: {podLifeTime: {maxPodLifeTimeSeconds: 60}}}\n",
        ] {
            let p = parse("p", doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
            assert!(p.disabled, "{doc}");
        }
        // params.nodeFit (true or false) is ignored for PodLifeTime, with a warning.
        let p = parse(
            "p",
            "PodLifeTime:\n  enabled: true\n  params:\n    podLifeTime: {maxPodLifeTimeSeconds: 5}\n    nodeFit: true\n",
        )
        .unwrap();
        assert!(!p.disabled);
        assert_eq!(p.max_pod_lifetime_seconds, Some(5));
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("nodeFit"), "{:?}", p.warnings);
    }

    #[test]
    fn bad_values_are_refused() {
        let neg = "PodLifeTime:\n  enabled: true\n  params:\n    podLifeTime: {maxPodLifeTimeSeconds: -5}\n";
        assert!(
            parse("p", neg)
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
        let both = "PodLifeTime:\n  enabled: true\n  params:\n    podLifeTime: {maxPodLifeTimeSeconds: 5}\n    namespaces: {include: [a], exclude: [b]}\n";
        assert!(
            parse("p", both)
                .unwrap_err()
                .to_string()
                .contains("only one")
        );
        assert!(parse("p", "- a\n").is_err());
        assert!(parse("p", "apiVersion: v1\nkind: ConfigMap\n").is_err());
    }
}
