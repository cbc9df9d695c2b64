//! The plan: for each add-on, in the documented order, from → to and the steps between, all
//! resolved and checked (versions, downgrades, configuration schema) before anything is sent.

use opsteps::exit::StepError;
use serde::Serialize;

use crate::api::{AddonState, Eks};
use crate::args::{Request, Selection};
use crate::schema;
use crate::versions::{self, Offered, Want};

/// The order add-ons are processed in: networking first (pods need it), then the proxy, then
/// DNS, then the rest by name.
#[must_use]
pub fn order(mut names: Vec<String>) -> Vec<String> {
    let rank = |n: &str| match n {
        "vpc-cni" => 0,
        "kube-proxy" => 1,
        "coredns" => 2,
        _ => 3,
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    names
}

/// What will be done to one add-on.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Move it through `steps`.
    Update,
    /// Already there.
    Unchanged,
    /// The mode resolved to an older version and --allow-downgrade is not set.
    SkippedDowngrade,
    /// next-safe: no version runs on both Kubernetes versions (kube-proxy follows the control
    /// plane), so it stays and moves after the upgrade.
    Kept,
}

/// One add-on's plan.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddonPlan {
    /// Add-on.
    pub name: String,
    /// Installed version.
    pub from: String,
    /// Target version.
    pub to: String,
    /// Versions to go through, the target last (empty when unchanged).
    pub steps: Vec<String>,
    /// What to do.
    pub action: Action,
    /// Versions offered for the cluster's Kubernetes version (for re-planning after a step).
    #[serde(skip)]
    pub offered: Vec<Offered>,
}

/// Plans every selected add-on. Bad input (unknown add-on, incompatible version, refused
/// downgrade, configuration that breaks the schema) is an error naming what is accepted.
pub async fn plan(
    eks: &Eks,
    req: &Request,
    kubernetes: &str,
    target_kubernetes: Option<&str>,
    allow_downgrade: bool,
) -> Result<Vec<AddonPlan>, StepError> {
    let installed = eks.list_addons().await?;
    let names: Vec<(String, Option<String>)> = match &req.selection {
        Selection::All => installed.iter().map(|n| (n.clone(), None)).collect(),
        Selection::Named(m) => {
            let unknown: Vec<&String> = m.keys().filter(|n| !installed.contains(n)).collect();
            if !unknown.is_empty() {
                return Err(StepError::bad_input(format!(
                    "add-on {} is not installed on this cluster; installed add-ons: {}",
                    unknown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    installed.join(", ")
                )));
            }
            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
    };
    let ordered = order(names.iter().map(|(n, _)| n.clone()).collect());
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for name in ordered {
        let pin = names
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, p)| p.clone());
        let want = pin.map_or_else(|| req.want.clone(), Want::Exact);
        let Some(state) = eks.describe_addon(&name).await? else {
            problems.push(format!("{name} is not installed"));
            continue;
        };
        match plan_one(
            eks,
            req,
            &name,
            &state,
            &want,
            kubernetes,
            target_kubernetes,
            allow_downgrade,
        )
        .await
        {
            Ok(p) => out.push(p),
            Err(e) if e.status() == opsteps::exit::ExitStatus::BadInput => {
                problems.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    if !problems.is_empty() {
        return Err(StepError::bad_input(format!(
            "nothing was changed: {}",
            problems.join("; ")
        )));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn plan_one(
    eks: &Eks,
    req: &Request,
    name: &str,
    state: &AddonState,
    want: &Want,
    kubernetes: &str,
    target_kubernetes: Option<&str>,
    allow_downgrade: bool,
) -> Result<AddonPlan, StepError> {
    let offered = eks.versions(name, kubernetes).await?;
    let next = match (want, target_kubernetes) {
        (Want::NextSafe, Some(t)) => Some((t, eks.versions(name, t).await?)),
        _ => None,
    };
    let from = state.version.clone();
    let to = match versions::select(
        name,
        want,
        kubernetes,
        &offered,
        next.as_ref().map(|(k, v)| (*k, v.as_slice())),
    ) {
        Ok(to) => to,
        Err(versions::SelectError::NoCommon { .. }) => {
            return Ok(AddonPlan {
                name: name.to_owned(),
                to: from.clone(),
                from,
                steps: Vec::new(),
                action: Action::Kept,
                offered,
            });
        }
        Err(e) => return Err(StepError::bad_input(e.to_string())),
    };
    let config_differs = req.configuration.as_ref().is_some_and(|(_, want)| {
        state
            .configuration_values
            .as_deref()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
            .as_ref()
            != Some(want)
    });
    let older = versions::cmp(&to, &from) == std::cmp::Ordering::Less;
    let mut plan = AddonPlan {
        name: name.to_owned(),
        from: from.clone(),
        to: to.clone(),
        steps: Vec::new(),
        action: Action::Unchanged,
        offered: offered.clone(),
    };
    if to == from && !config_differs {
        return Ok(plan);
    }
    if older && !allow_downgrade {
        if matches!(want, Want::Exact(_)) {
            return Err(StepError::bad_input(format!(
                "{name} {to} is older than the installed {from}: downgrades need --allow-downgrade"
            )));
        }
        plan.action = Action::SkippedDowngrade;
        return Ok(plan);
    }
    plan.steps = versions::steps(name, &from, &to, kubernetes, &offered)
        .map_err(|e| StepError::bad_input(e.to_string()))?;
    plan.action = Action::Update;
    if let Some((_, values)) = &req.configuration {
        for v in &plan.steps {
            let Some(schema) = eks.configuration_schema(name, v).await? else {
                continue;
            };
            let violations = schema::check(name, v, &schema, values)
                .map_err(|e| StepError::failed(e.to_string()))?;
            if !violations.is_empty() {
                return Err(StepError::bad_input(format!(
                    "--configuration-values breaks the configuration schema of {name} {v}: {}",
                    violations
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networking_first_then_proxy_dns_and_the_rest() {
        let got = order(
            [
                "metrics-server",
                "coredns",
                "aws-ebs-csi-driver",
                "vpc-cni",
                "kube-proxy",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(
            got,
            [
                "vpc-cni",
                "kube-proxy",
                "coredns",
                "aws-ebs-csi-driver",
                "metrics-server"
            ]
        );
    }
}
