//! Version selection: the target for a mode, and the steps to reach it (vpc-cni moves one
//! minor version at a time, as AWS requires).

use std::cmp::Ordering;

use opsteps::exit::StepError;

/// How the target version is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// The newest version compatible with the cluster's Kubernetes version.
    Latest,
    /// The version EKS flags as default for the cluster's Kubernetes version.
    Default,
    /// The newest version compatible with both the cluster's and the target Kubernetes version.
    NextSafe,
    /// This version.
    Exact(String),
}

impl Want {
    /// `latest`, `default`, `next-safe` or a version such as `v1.19.2-eksbuild.1`.
    pub fn parse(s: &str) -> Result<Self, StepError> {
        Ok(match s.trim() {
            "latest" => Self::Latest,
            "default" => Self::Default,
            "next-safe" => Self::NextSafe,
            v if v.starts_with('v') && key(v).len() >= 3 => Self::Exact(v.to_owned()),
            v => {
                return Err(StepError::bad_input(format!(
                    "version {v:?}: expected latest, default, next-safe or an add-on version such as v1.19.2-eksbuild.1"
                )));
            }
        })
    }
}

/// One version DescribeAddonVersions lists for a Kubernetes version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    /// `v1.19.2-eksbuild.1`.
    pub version: String,
    /// EKS's default for that Kubernetes version.
    pub default: bool,
}

/// Numeric key of `v1.19.2-eksbuild.1`: [1, 19, 2, 1].
#[must_use]
pub fn key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Compares two add-on versions numerically.
#[must_use]
pub fn cmp(a: &str, b: &str) -> Ordering {
    key(a).cmp(&key(b))
}

/// `(major, minor)` of an add-on version.
#[must_use]
pub fn minor(v: &str) -> Option<(u64, u64)> {
    let k = key(v);
    Some((*k.first()?, *k.get(1)?))
}

/// `1.33` (or `1.33.2`, `v1.33`) → 33.
#[must_use]
pub fn kube_minor(v: &str) -> Option<u32> {
    v.trim_start_matches('v')
        .strip_prefix("1.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Sorted newest first.
fn newest_first(v: &[Offered]) -> Vec<&Offered> {
    let mut s: Vec<&Offered> = v.iter().collect();
    s.sort_by(|a, b| cmp(&b.version, &a.version));
    s
}

/// Why no target could be chosen (all bad input).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    /// No version of the add-on is offered for the cluster's Kubernetes version.
    #[error("no version of {addon} is offered for Kubernetes {kubernetes}")]
    NoneOffered {
        /// Add-on.
        addon: String,
        /// Kubernetes version.
        kubernetes: String,
    },
    /// The exact version is not offered for the cluster's Kubernetes version.
    #[error(
        "{addon} {version} is not compatible with Kubernetes {kubernetes} (or does not exist); compatible versions: {compatible}"
    )]
    Incompatible {
        /// Add-on.
        addon: String,
        /// Asked version.
        version: String,
        /// Kubernetes version.
        kubernetes: String,
        /// Newest first, comma separated.
        compatible: String,
    },
    /// Nothing is compatible with both Kubernetes versions.
    #[error(
        "no {addon} version is compatible with both Kubernetes {current} and {next}; compatible with {current}: {compatible}"
    )]
    NoCommon {
        /// Add-on.
        addon: String,
        /// Cluster version.
        current: String,
        /// Target version.
        next: String,
        /// Versions for the cluster's version.
        compatible: String,
    },
    /// The catalogue has no version of an intermediate minor for a one-minor-at-a-time add-on.
    #[error(
        "{addon} moves one minor version at a time, but no {addon} v{major}.{minor}.x is offered for Kubernetes {kubernetes} to step through"
    )]
    NoStep {
        /// Add-on.
        addon: String,
        /// Major of the missing step.
        major: u64,
        /// Minor of the missing step.
        minor: u64,
        /// Kubernetes version.
        kubernetes: String,
    },
}

/// The target version of `addon` for `want`, from the versions offered for the cluster's
/// Kubernetes version (`now`) and, for next-safe, for the target one (`next`).
pub fn select(
    addon: &str,
    want: &Want,
    kubernetes: &str,
    now: &[Offered],
    next: Option<(&str, &[Offered])>,
) -> Result<String, SelectError> {
    let sorted = newest_first(now);
    let list = || {
        sorted
            .iter()
            .map(|o| o.version.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if sorted.is_empty() {
        return Err(SelectError::NoneOffered {
            addon: addon.into(),
            kubernetes: kubernetes.into(),
        });
    }
    match want {
        Want::Latest => Ok(sorted[0].version.clone()),
        Want::Default => Ok(sorted
            .iter()
            .find(|o| o.default)
            .unwrap_or(&sorted[0])
            .version
            .clone()),
        Want::Exact(v) => sorted
            .iter()
            .find(|o| &o.version == v)
            .map(|o| o.version.clone())
            .ok_or_else(|| SelectError::Incompatible {
                addon: addon.into(),
                version: v.clone(),
                kubernetes: kubernetes.into(),
                compatible: list(),
            }),
        Want::NextSafe => {
            let (next_k, next_v) = next.unwrap_or(("?", &[]));
            sorted
                .iter()
                .find(|o| next_v.iter().any(|n| n.version == o.version))
                .map(|o| o.version.clone())
                .ok_or_else(|| SelectError::NoCommon {
                    addon: addon.into(),
                    current: kubernetes.into(),
                    next: next_k.into(),
                    compatible: list(),
                })
        }
    }
}

/// Whether `addon` must move one minor version at a time (vpc-cni, as AWS documents).
#[must_use]
pub fn one_minor_at_a_time(addon: &str) -> bool {
    addon == "vpc-cni"
}

/// The versions to go through from `current` to `target`, `target` last. For vpc-cni, the
/// newest offered version of each minor in between; for the others, `target` alone.
pub fn steps(
    addon: &str,
    current: &str,
    target: &str,
    kubernetes: &str,
    offered: &[Offered],
) -> Result<Vec<String>, SelectError> {
    let (Some(from), Some(to)) = (minor(current), minor(target)) else {
        return Ok(vec![target.to_owned()]);
    };
    if !one_minor_at_a_time(addon) || from.0 != to.0 || from.1.abs_diff(to.1) <= 1 {
        return Ok(vec![target.to_owned()]);
    }
    let sorted = newest_first(offered);
    let mids: Vec<u64> = if to.1 > from.1 {
        (from.1 + 1..to.1).collect()
    } else {
        (to.1 + 1..from.1).rev().collect()
    };
    let mut out = Vec::new();
    for m in mids {
        let v = sorted
            .iter()
            .find(|o| minor(&o.version) == Some((from.0, m)))
            .ok_or_else(|| SelectError::NoStep {
                addon: addon.into(),
                major: from.0,
                minor: m,
                kubernetes: kubernetes.into(),
            })?;
        out.push(v.version.clone());
    }
    out.push(target.to_owned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(v: &[(&str, bool)]) -> Vec<Offered> {
        v.iter()
            .map(|(v, d)| Offered {
                version: (*v).into(),
                default: *d,
            })
            .collect()
    }

    #[test]
    fn modes_pick_from_the_offer() {
        let now = offered(&[
            ("v1.19.2-eksbuild.1", false),
            ("v1.20.4-eksbuild.1", false),
            ("v1.19.6-eksbuild.7", true),
            ("v1.18.6-eksbuild.1", false),
        ]);
        let next = offered(&[("v1.19.6-eksbuild.7", true), ("v1.19.5-eksbuild.3", false)]);
        let s = |w: Want| select("vpc-cni", &w, "1.32", &now, Some(("1.33", &next)));
        assert_eq!(s(Want::Latest).unwrap(), "v1.20.4-eksbuild.1");
        assert_eq!(s(Want::Default).unwrap(), "v1.19.6-eksbuild.7");
        assert_eq!(s(Want::NextSafe).unwrap(), "v1.19.6-eksbuild.7");
        assert_eq!(
            s(Want::Exact("v1.19.2-eksbuild.1".into())).unwrap(),
            "v1.19.2-eksbuild.1"
        );
        let e = s(Want::Exact("v1.17.0-eksbuild.1".into())).unwrap_err();
        assert!(
            e.to_string()
                .contains("v1.20.4-eksbuild.1, v1.19.6-eksbuild.7, v1.19.2-eksbuild.1"),
            "{e}"
        );
    }

    #[test]
    fn vpc_cni_steps_one_minor_at_a_time() {
        let now = offered(&[
            ("v1.20.4-eksbuild.1", false),
            ("v1.19.6-eksbuild.7", false),
            ("v1.19.2-eksbuild.1", false),
            ("v1.18.6-eksbuild.1", false),
        ]);
        assert_eq!(
            steps(
                "vpc-cni",
                "v1.18.6-eksbuild.1",
                "v1.20.4-eksbuild.1",
                "1.32",
                &now
            )
            .unwrap(),
            vec!["v1.19.6-eksbuild.7", "v1.20.4-eksbuild.1"]
        );
        assert_eq!(
            steps(
                "vpc-cni",
                "v1.20.4-eksbuild.1",
                "v1.18.6-eksbuild.1",
                "1.32",
                &now
            )
            .unwrap(),
            vec!["v1.19.6-eksbuild.7", "v1.18.6-eksbuild.1"]
        );
        assert_eq!(
            steps(
                "coredns",
                "v1.10.0-eksbuild.1",
                "v1.12.1-eksbuild.1",
                "1.32",
                &now
            )
            .unwrap(),
            vec!["v1.12.1-eksbuild.1"]
        );
        let gap = offered(&[("v1.20.4-eksbuild.1", false)]);
        assert!(matches!(
            steps(
                "vpc-cni",
                "v1.18.6-eksbuild.1",
                "v1.20.4-eksbuild.1",
                "1.32",
                &gap
            ),
            Err(SelectError::NoStep { minor: 19, .. })
        ));
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(
            cmp("v1.11.4-eksbuild.14", "v1.11.4-eksbuild.2"),
            Ordering::Greater
        );
        assert_eq!(kube_minor("1.33"), Some(33));
        assert_eq!(kube_minor("v1.33.1"), Some(33));
        assert_eq!(kube_minor("2.1"), None);
        assert!(Want::parse("v1").is_err());
    }
}
