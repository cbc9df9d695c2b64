//! A sandbox with RBAC enforced from `workflows/rbac/`, one EKS identity per step, the S3
//! bucket collect-gpu-stats writes to, and a local runner wired to the step binaries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use opsteps_runner::{Catalog, Event, RunRequest, Runner, RunnerConfig, Workflow};
use opsteps_sandbox::requestlog::RequestRecord;
use opsteps_sandbox::sandbox::{Options, Sandbox};
use opsteps_sandbox::scenario::Scenario;
use serde_json::{Value, json};

use crate::binaries::{STEPS, step_binaries};
use crate::rbac::{self, RuleRef};

/// The bucket the gpu-stats CronWorkflow writes to (`s3://opsteps-reports/gpu`).
pub const BUCKET: &str = "opsteps-reports";

/// The workflow namespace, where the steps' ServiceAccounts and executor Roles live.
pub const WORKFLOW_NAMESPACE: &str = "argo";

/// Observer of runner events.
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// What to start.
pub struct Setup {
    /// Scenario file (`rbac: true` is forced on).
    pub scenario: PathBuf,
    /// Clock scale overriding the scenario's.
    pub scale: Option<f64>,
    /// Take this rule out of the RBAC objects (minimal-role tests).
    pub without_rule: Option<RuleRef>,
    /// The runner's work dir; a temporary directory (removed on drop) when `None`.
    pub work_dir: Option<PathBuf>,
    /// The S3 endpoint's directory; temporary when `None`.
    pub s3_dir: Option<PathBuf>,
    /// Runner event observer.
    pub observer: Option<Observer>,
    /// Retry backoff multiplier (0 in tests: retry at once).
    pub backoff_scale: f64,
}

impl Setup {
    /// `tests/scenarios/<file>` with test defaults.
    #[must_use]
    pub fn scenario(file: &str) -> Self {
        Self {
            scenario: crate::workspace_root().join("tests/scenarios").join(file),
            scale: None,
            without_rule: None,
            work_dir: None,
            s3_dir: None,
            observer: None,
            backoff_scale: 0.0,
        }
    }
}

/// The access key a step signs its EKS tokens with. collect-gpu-stats also writes to S3, whose
/// endpoint accepts one key only, so it gets that key.
#[must_use]
pub fn access_key(step: &str) -> (String, String) {
    if step == "collect-gpu-stats" {
        return (
            opsteps_sandbox::s3::ACCESS_KEY.to_owned(),
            opsteps_sandbox::s3::SECRET_KEY.to_owned(),
        );
    }
    let id: String = step
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase();
    (format!("AKIAE2E{id}"), format!("secret-of-{step}"))
}

/// The Kubernetes user name the access entry gives a step.
#[must_use]
pub fn step_user(step: &str) -> String {
    format!("opsteps-{step}")
}

/// A running sandbox and the runner pointed at it.
pub struct Harness {
    /// The sandbox (RBAC on).
    pub sandbox: Sandbox,
    /// The runner (catalog: `workflows/`).
    pub runner: Runner,
    /// EKS cluster name (the pipelines' `cluster`).
    pub cluster: String,
    /// Region (the pipelines' `region`).
    pub region: String,
    /// The runner's work dir.
    pub work_dir: PathBuf,
    /// The S3 endpoint's root directory (objects are files under `<root>/<bucket>/`).
    pub s3_root: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// The scenario as JSON with the RBAC objects, the `argo` namespace and one access entry per
/// step added.
fn scenario_with_identities(path: &Path, without: Option<&RuleRef>) -> Result<(Scenario, Value)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut s: Value = serde_saphyr::from_str(&text)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
    let mut objects = rbac::load(&crate::workspace_root().join("workflows/rbac"))?;
    if let Some(rule) = without {
        objects = rbac::without(objects, rule)?;
    }
    s["rbac"] = json!(true);
    let namespaces = s["namespaces"].as_array().cloned().unwrap_or_default();
    let mut namespaces: Vec<Value> = namespaces
        .into_iter()
        .filter(|n| n["name"] != WORKFLOW_NAMESPACE)
        .collect();
    namespaces.push(json!({"name": WORKFLOW_NAMESPACE}));
    s["namespaces"] = Value::Array(namespaces);
    let mut all = s["objects"].as_array().cloned().unwrap_or_default();
    all.extend(objects);
    s["objects"] = Value::Array(all);
    if s["eks"].is_null() {
        s["eks"] = json!({});
    }
    s["eks"]["defaultAdmin"] = json!(false);
    let mut entries = s["eks"]["accessEntries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for step in STEPS {
        let (key, secret) = access_key(step);
        entries.push(json!({
            "accessKeyId": key,
            "secretAccessKey": secret,
            "principalArn": format!("arn:aws:iam::111122223333:role/opsteps-{step}"),
            "username": step_user(step),
            "groups": [format!("opsteps:{step}")],
        }));
    }
    s["eks"]["accessEntries"] = Value::Array(entries);
    let yaml = serde_json::to_string(&s)?;
    let scenario = Scenario::from_yaml(&yaml)
        .with_context(|| format!("loading {} with the RBAC objects", path.display()))?;
    Ok((scenario, s))
}

impl Harness {
    /// Starts the sandbox and builds the runner.
    pub async fn start(setup: Setup) -> Result<Harness> {
        let (scenario, raw) =
            scenario_with_identities(&setup.scenario, setup.without_rule.as_ref())?;
        let cluster = raw["cluster"]["name"]
            .as_str()
            .unwrap_or("sandbox")
            .to_owned();
        let region = raw["cluster"]["region"]
            .as_str()
            .unwrap_or("us-east-1")
            .to_owned();
        let mut options = Options::default().scenario(scenario);
        if let Some(scale) = setup.scale {
            options = options.scale(scale);
        }
        let sandbox = Sandbox::start(options).await?;
        let s3_url = match &setup.s3_dir {
            Some(dir) => sandbox.s3_at(dir).await?,
            None => sandbox.s3_url().await?,
        };
        let s3 = sandbox.s3().await?;
        s3.create_bucket(BUCKET)?;
        let s3_root = s3.root().to_path_buf();

        let (temp, work_dir) = if let Some(d) = setup.work_dir {
            std::fs::create_dir_all(&d)?;
            (None, d)
        } else {
            let t = tempfile::Builder::new().prefix("opsteps-e2e-").tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        };
        let mut config = RunnerConfig::new(work_dir.clone());
        config.binaries = step_binaries()?;
        config.env = opsteps_sandbox::eks::client_env(&sandbox.eks_url(), &region)
            .into_iter()
            .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY") && !k.starts_with("AWS_SECRET"))
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        config
            .env
            .push(("AWS_ENDPOINT_URL_S3".to_owned(), s3_url.clone()));
        config.step_env = STEPS
            .iter()
            .map(|step| {
                let (key, secret) = access_key(step);
                (
                    (*step).to_owned(),
                    vec![
                        ("AWS_ACCESS_KEY_ID".to_owned(), key),
                        ("AWS_SECRET_ACCESS_KEY".to_owned(), secret),
                    ],
                )
            })
            .collect::<BTreeMap<_, _>>();
        // The sandbox's clock runs many times faster than real time, but bump-addon polls EKS
        // every 15 real seconds (its default, which the template keeps): poll as often as the
        // compressed add-on updates need.
        if let Some(env) = config.step_env.get_mut("bump-addon") {
            env.push(("OPSTEPS_BUMP_POLL_INTERVAL".to_owned(), "200ms".to_owned()));
        }
        WORKFLOW_NAMESPACE.clone_into(&mut config.namespace);
        config.backoff_scale = setup.backoff_scale;
        config.observer = setup.observer;
        let catalog = Catalog::load_dir(&crate::workspace_root().join("workflows"))?;
        let runner = Runner::new(catalog, config);
        Ok(Harness {
            sandbox,
            runner,
            cluster,
            region,
            work_dir,
            s3_root,
            _temp: temp,
        })
    }

    /// A request for `submit` with the cluster and region parameters filled in.
    #[must_use]
    pub fn request(&self, submit: opsteps_runner::Submit) -> RunRequest {
        RunRequest::new(submit)
            .param("cluster", &self.cluster)
            .param("region", &self.region)
    }

    /// Runs a workflow; Err only for submit-time errors.
    pub async fn run(&self, req: RunRequest) -> Result<Workflow> {
        Ok(self.runner.run(req).await?)
    }

    /// The request log's length: a mark to look at requests after it.
    #[must_use]
    pub fn mark(&self) -> usize {
        self.sandbox.requests().len()
    }

    /// Requests after `mark`.
    #[must_use]
    pub fn requests_since(&self, mark: usize) -> Vec<RequestRecord> {
        self.sandbox.requests().into_iter().skip(mark).collect()
    }

    /// Effective mutations (writes that were not dry runs and succeeded) by the steps' users
    /// after `mark`.
    #[must_use]
    pub fn step_mutation_records(&self, mark: usize) -> Vec<RequestRecord> {
        self.requests_since(mark)
            .into_iter()
            .filter(|r| r.user.starts_with("opsteps-") && r.is_effective_mutation())
            .collect()
    }

    /// [`Self::step_mutation_records`] as `user verb resource[/sub] ns/name status` lines.
    #[must_use]
    pub fn step_mutations_since(&self, mark: usize) -> Vec<String> {
        self.step_mutation_records(mark)
            .iter()
            .map(describe)
            .collect()
    }

    /// Mutating EKS calls (UpdateAddon, UpdateNodegroup*, UpdateClusterVersion, Create/Delete).
    #[must_use]
    pub fn eks_mutations(&self) -> Vec<String> {
        self.sandbox.with(|c| {
            c.eks
                .requests
                .iter()
                .filter(|r| {
                    ["Update", "Create", "Delete"]
                        .iter()
                        .any(|p| r.operation.starts_with(p))
                })
                .map(|r| r.operation.clone())
                .collect()
        })
    }

    /// The sandbox's invariants: no budget breached, no protected pod evicted, no dry-run
    /// mutation. Err lists the violations.
    pub fn check_invariants(&self) -> Result<()> {
        let v = self.sandbox.invariants();
        if v.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("invariants violated: {v:#?}")
        }
    }

    /// Objects of `plural` in `group` (`""` for core), in one namespace or all.
    #[must_use]
    pub fn list(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        self.sandbox.with(|c| {
            c.store
                .list(opsteps_sandbox::store::res(group, plural), namespace)
                .map(|o| (**o).clone())
                .collect()
        })
    }

    /// Pods whose labels include every `key=value` of `labels`.
    #[must_use]
    pub fn pods(&self, namespace: &str, labels: &[(&str, &str)]) -> Vec<Value> {
        self.list("", "pods", Some(namespace))
            .into_iter()
            .filter(|p| {
                labels
                    .iter()
                    .all(|(k, v)| p["metadata"]["labels"][*k].as_str() == Some(*v))
            })
            .collect()
    }

    /// Nodes of an EKS node group.
    #[must_use]
    pub fn nodegroup_nodes(&self, group: &str) -> Vec<Value> {
        self.list("", "nodes", None)
            .into_iter()
            .filter(|n| {
                n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"].as_str() == Some(group)
            })
            .collect()
    }

    /// Installed add-on versions.
    #[must_use]
    pub fn addon_versions(&self) -> BTreeMap<String, String> {
        self.sandbox.with(|c| {
            c.eks
                .addons
                .values()
                .map(|a| (a.name.clone(), a.version.clone()))
                .collect()
        })
    }

    /// Every object key in the S3 bucket, as `s3://BUCKET/KEY`.
    #[must_use]
    pub fn s3_objects(&self) -> Vec<String> {
        let root = self.s3_root.join(BUCKET);
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(&root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    // s3s-fs keeps its own metadata files next to the objects.
                    if !key.contains(".s3s") {
                        out.push(format!("s3://{BUCKET}/{key}"));
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// Whether a pod is Ready.
#[must_use]
pub fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

impl Harness {
    /// Pod names evicted more often than pods of that name were removed: for each name, the
    /// successful eviction requests after `mark` against the distinct UIDs of that name that
    /// got a deletionTimestamp (a StatefulSet's pod may be evicted again under its new UID).
    /// Empty when no pod was evicted twice.
    #[must_use]
    pub fn pods_evicted_twice(&self, mark: usize) -> Vec<String> {
        let mut evictions: BTreeMap<String, usize> = BTreeMap::new();
        for r in self.requests_since(mark) {
            if r.subresource == "eviction" && (200..300).contains(&r.status) && !r.dry_run {
                *evictions
                    .entry(format!("{}/{}", r.namespace, r.name))
                    .or_default() += 1;
            }
        }
        let removed: BTreeMap<String, std::collections::BTreeSet<String>> =
            self.sandbox.with(|c| {
                let mut m: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
                let pods = opsteps_sandbox::store::res("", "pods");
                let from = c.store.oldest_resumable();
                for e in c.store.events_since(pods, from).unwrap_or_default() {
                    let had = e
                        .prev
                        .as_ref()
                        .is_some_and(|p| !p["metadata"]["deletionTimestamp"].is_null());
                    if !had && !e.object["metadata"]["deletionTimestamp"].is_null() {
                        let md = &e.object["metadata"];
                        m.entry(format!(
                            "{}/{}",
                            md["namespace"].as_str().unwrap_or_default(),
                            md["name"].as_str().unwrap_or_default()
                        ))
                        .or_default()
                        .insert(md["uid"].as_str().unwrap_or_default().to_owned());
                    }
                }
                m
            });
        evictions
            .into_iter()
            .filter(|(name, n)| *n > removed.get(name).map_or(0, std::collections::BTreeSet::len))
            .map(|(name, n)| format!("{name}: {n} evictions"))
            .collect()
    }
}

/// One request as `user verb resource[/sub] ns/name status`.
#[must_use]
pub fn describe(r: &RequestRecord) -> String {
    let sub = if r.subresource.is_empty() {
        String::new()
    } else {
        format!("/{}", r.subresource)
    };
    format!(
        "{} {} {}{sub} {}/{} {}",
        r.user, r.verb, r.resource, r.namespace, r.name, r.status
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The e2e scenario loads with the RBAC objects and identities, RBAC is enforced, and a
    /// step's identity is its group's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn e2e_scenario_loads_with_rbac_and_identities() {
        let path = crate::workspace_root().join("tests/scenarios/e2e.yaml");
        let (scenario, raw) = scenario_with_identities(&path, None).unwrap();
        assert!(scenario.rbac);
        assert_eq!(
            raw["eks"]["accessEntries"].as_array().unwrap().len(),
            STEPS.len()
        );
        let sb = Sandbox::start(Options::default().scenario(scenario))
            .await
            .unwrap();
        let roles = sb.with(|c| {
            c.store
                .list(
                    opsteps_sandbox::store::res("rbac.authorization.k8s.io", "clusterroles"),
                    None,
                )
                .filter(|r| {
                    r["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("opsteps-")
                })
                .count()
        });
        // bump-addon has a Role in kube-system only.
        assert_eq!(roles, STEPS.len() - 1);
        let sa = sb.with(|c| {
            c.store
                .get(
                    opsteps_sandbox::store::res("", "serviceaccounts"),
                    "argo",
                    "opsteps-drain-node",
                )
                .is_some()
        });
        assert!(sa, "ServiceAccount argo/opsteps-drain-node missing");
    }
}
