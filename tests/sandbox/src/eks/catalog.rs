//! The add-on catalogue (DescribeAddonVersions, DescribeAddonConfiguration) and the in-cluster
//! workloads each add-on runs, for Kubernetes 1.31 to 1.35.

use serde_json::{Value, json};

/// Kubernetes minors the catalogue covers.
pub const MINORS: std::ops::RangeInclusive<u32> = 31..=35;

/// One published add-on version and the cluster minors it supports.
struct Release {
    version: &'static str,
    minors: std::ops::RangeInclusive<u32>,
}

const fn r(version: &'static str, minors: std::ops::RangeInclusive<u32>) -> Release {
    Release { version, minors }
}

const VPC_CNI: &[Release] = &[
    r("v1.20.4-eksbuild.1", 31..=35),
    r("v1.20.1-eksbuild.3", 31..=35),
    r("v1.19.6-eksbuild.7", 31..=34),
    r("v1.19.5-eksbuild.3", 31..=34),
    r("v1.19.2-eksbuild.1", 31..=33),
    r("v1.18.6-eksbuild.1", 31..=32),
];

const KUBE_PROXY: &[Release] = &[
    r("v1.35.0-eksbuild.2", 35..=35),
    r("v1.35.0-eksbuild.1", 35..=35),
    r("v1.34.1-eksbuild.2", 34..=34),
    r("v1.34.0-eksbuild.2", 34..=34),
    r("v1.33.3-eksbuild.4", 33..=33),
    r("v1.33.0-eksbuild.2", 33..=33),
    r("v1.32.6-eksbuild.2", 32..=32),
    r("v1.32.0-eksbuild.2", 32..=32),
    r("v1.31.10-eksbuild.2", 31..=31),
    r("v1.31.3-eksbuild.2", 31..=31),
];

const COREDNS: &[Release] = &[
    r("v1.12.4-eksbuild.1", 34..=35),
    r("v1.12.2-eksbuild.4", 33..=35),
    r("v1.12.1-eksbuild.2", 33..=35),
    r("v1.11.4-eksbuild.14", 31..=34),
    r("v1.11.4-eksbuild.2", 31..=33),
    r("v1.11.3-eksbuild.1", 31..=32),
];

const EBS_CSI: &[Release] = &[
    r("v1.48.0-eksbuild.2", 31..=35),
    r("v1.46.0-eksbuild.1", 31..=35),
    r("v1.44.0-eksbuild.1", 31..=34),
    r("v1.41.0-eksbuild.1", 31..=33),
    r("v1.38.1-eksbuild.2", 31..=32),
];

/// Add-ons the catalogue knows, in DescribeAddonVersions order.
pub const ADDONS: &[&str] = &["aws-ebs-csi-driver", "coredns", "kube-proxy", "vpc-cni"];

fn releases(addon: &str) -> &'static [Release] {
    match addon {
        "vpc-cni" => VPC_CNI,
        "kube-proxy" => KUBE_PROXY,
        "coredns" => COREDNS,
        "aws-ebs-csi-driver" => EBS_CSI,
        _ => &[],
    }
}

/// Whether `addon` is in the catalogue.
#[must_use]
pub fn known(addon: &str) -> bool {
    !releases(addon).is_empty()
}

/// `1.33` → 33.
#[must_use]
pub fn minor_of(version: &str) -> Option<u32> {
    version.strip_prefix("1.")?.split('.').next()?.parse().ok()
}

/// Numeric sort key of `v1.19.2-eksbuild.1`: [1, 19, 2, 1].
#[must_use]
pub fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Versions of `addon` compatible with `minor`, newest first.
#[must_use]
pub fn versions_for(addon: &str, minor: u32) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = releases(addon)
        .iter()
        .filter(|r| r.minors.contains(&minor))
        .map(|r| r.version)
        .collect();
    v.sort_by_key(|v| std::cmp::Reverse(version_key(v)));
    v
}

/// The version EKS installs by default on `minor`: the second newest compatible one (EKS keeps
/// the default a step behind the latest), or the only one.
#[must_use]
pub fn default_version(addon: &str, minor: u32) -> Option<&'static str> {
    let v = versions_for(addon, minor);
    v.get(1).or_else(|| v.first()).copied()
}

/// Whether `version` of `addon` exists at all.
#[must_use]
pub fn exists(addon: &str, version: &str) -> bool {
    releases(addon).iter().any(|r| r.version == version)
}

/// The `addons[]` entry of DescribeAddonVersions for `addon`, restricted to `minor` if given.
#[must_use]
pub fn addon_info(addon: &str, minor: Option<u32>) -> Value {
    let mut rels: Vec<&Release> = releases(addon)
        .iter()
        .filter(|r| minor.is_none_or(|m| r.minors.contains(&m)))
        .collect();
    rels.sort_by_key(|r| std::cmp::Reverse(version_key(r.version)));
    let versions: Vec<Value> = rels
        .iter()
        .map(|r| {
            let compat: Vec<Value> = r
                .minors
                .clone()
                .filter(|m| minor.is_none_or(|x| x == *m))
                .rev()
                .map(|m| {
                    json!({
                        "clusterVersion": format!("1.{m}"),
                        "platformVersions": ["*"],
                        "defaultVersion": default_version(addon, m) == Some(r.version),
                    })
                })
                .collect();
            json!({
                "addonVersion": r.version,
                "architecture": ["amd64", "arm64"],
                "computeTypes": ["ec2", "hybrid"],
                "compatibilities": compat,
                "requiresConfiguration": false,
                "requiresIamPermissions": addon == "aws-ebs-csi-driver" || addon == "vpc-cni",
            })
        })
        .collect();
    let kind = if addon == "aws-ebs-csi-driver" {
        "storage"
    } else {
        "networking"
    };
    json!({
        "addonName": addon,
        "type": kind,
        "addonVersions": versions,
        "publisher": "eks",
        "owner": "aws",
    })
}

/// The JSON Schema of `addon` `version`'s `configurationValues`. The schemas differ by version
/// where the add-on's options did: kube-proxy accepts `mode: nftables` from v1.33 (nftables
/// mode went GA in Kubernetes 1.33).
#[must_use]
pub fn configuration_schema(addon: &str, version: &str) -> Value {
    let modes = if version_key(version) >= vec![1, 33] {
        json!(["iptables", "ipvs", "nftables"])
    } else {
        json!(["iptables", "ipvs"])
    };
    let str_prop = || json!({"type": "string"});
    let resources = json!({"type": "object", "properties": {
        "limits": {"type": "object"}, "requests": {"type": "object"}}});
    let props = match addon {
        "vpc-cni" => json!({
            "env": {"type": "object", "additionalProperties": false, "properties": {
                "ENABLE_PREFIX_DELEGATION": str_prop(), "ENABLE_POD_ENI": str_prop(),
                "WARM_ENI_TARGET": str_prop(), "WARM_IP_TARGET": str_prop(),
                "MINIMUM_IP_TARGET": str_prop(), "AWS_VPC_K8S_CNI_LOGLEVEL": str_prop(),
                "POD_SECURITY_GROUP_ENFORCING_MODE": str_prop(), "ENABLE_NETWORK_POLICY": str_prop()}},
            "init": {"type": "object"},
            "resources": resources,
            "tolerations": {"type": "array"},
            "enableNetworkPolicy": str_prop(),
        }),
        "kube-proxy" => json!({
            "mode": {"type": "string", "enum": modes},
            "ipvs": {"type": "object"},
            "resources": resources,
            "podAnnotations": {"type": "object"},
        }),
        "coredns" => json!({
            "replicaCount": {"type": "integer", "minimum": 1},
            "resources": resources,
            "tolerations": {"type": "array"},
            "nodeSelector": {"type": "object"},
            "affinity": {"type": "object"},
            "corefile": str_prop(),
            "podDisruptionBudget": {"type": "object"},
            "autoScaling": {"type": "object"},
        }),
        "aws-ebs-csi-driver" => json!({
            "controller": {"type": "object"},
            "node": {"type": "object"},
            "sidecars": {"type": "object"},
            "defaultStorageClass": {"type": "object"},
        }),
        _ => json!({}),
    };
    json!({
        "$ref": "#/definitions/Config",
        "$schema": "http://json-schema.org/draft-06/schema#",
        "definitions": {"Config": {
            "additionalProperties": false,
            "properties": props,
            "title": format!("{addon} add-on configuration"),
            "type": "object",
        }},
        "description": format!("Configuration values for the {addon} EKS add-on"),
    })
}

/// Checks `values` (JSON or YAML) against `addon` `version`'s schema: an object whose keys (and,
/// for vpc-cni, `env` keys) the schema defines, with the type, `enum` and `minimum` of each.
/// Returns the parsed value.
pub fn validate_configuration(addon: &str, version: &str, values: &str) -> Result<Value, String> {
    if values.trim().is_empty() {
        return Ok(json!({}));
    }
    let parsed: Value = serde_json::from_str(values)
        .or_else(|_| serde_saphyr::from_str::<Value>(values))
        .map_err(|e| format!("Json schema validation failed with error: [$: {e}]"))?;
    let Some(obj) = parsed.as_object() else {
        return Err("Json schema validation failed with error: [$: must be an object]".into());
    };
    let schema = configuration_schema(addon, version);
    let props = &schema["definitions"]["Config"]["properties"];
    for (k, v) in obj {
        let Some(p) = props.get(k) else {
            return Err(format!(
                "Json schema validation failed with error: [$.{k}: is not defined in the schema and the schema does not allow additional properties]"
            ));
        };
        let want = p["type"].as_str().unwrap_or("");
        let ok = match want {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            _ => true,
        };
        if !ok {
            return Err(format!(
                "Json schema validation failed with error: [$.{k}: {} found, {want} expected]",
                json_type(v)
            ));
        }
        if let Some(allowed) = p["enum"].as_array()
            && !allowed.contains(v)
        {
            return Err(format!(
                "Json schema validation failed with error: [$.{k}: does not have a value in the enumeration {}]",
                Value::Array(allowed.clone())
            ));
        }
        if let (Some(min), Some(n)) = (p["minimum"].as_f64(), v.as_f64())
            && n < min
        {
            return Err(format!(
                "Json schema validation failed with error: [$.{k}: must have a minimum value of {min}]"
            ));
        }
        if let (Some(inner), Some(o)) = (p.get("properties"), v.as_object())
            && p["additionalProperties"] == json!(false)
        {
            for ik in o.keys() {
                if inner.get(ik).is_none() {
                    return Err(format!(
                        "Json schema validation failed with error: [$.{k}.{ik}: is not defined in the schema and the schema does not allow additional properties]"
                    ));
                }
            }
        }
    }
    Ok(parsed)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An in-cluster workload an add-on manages: kind (`DaemonSet`/`Deployment`), namespace, name,
/// the container to update and the image repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// `DaemonSet` or `Deployment`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: &'static str,
    /// Object name.
    pub name: &'static str,
    /// Container whose image the add-on sets (the first container when none has this name).
    pub container: &'static str,
    /// Repository under the regional EKS ECR registry.
    pub repository: &'static str,
}

const fn w(
    kind: &'static str,
    name: &'static str,
    container: &'static str,
    repository: &'static str,
) -> Workload {
    Workload {
        kind,
        namespace: "kube-system",
        name,
        container,
        repository,
    }
}

/// The workloads `addon` runs.
#[must_use]
pub fn workloads(addon: &str) -> &'static [Workload] {
    const VPC: &[Workload] = &[w("DaemonSet", "aws-node", "aws-node", "amazon-k8s-cni")];
    const PROXY: &[Workload] = &[w("DaemonSet", "kube-proxy", "kube-proxy", "eks/kube-proxy")];
    const DNS: &[Workload] = &[w("Deployment", "coredns", "coredns", "eks/coredns")];
    const EBS: &[Workload] = &[
        w(
            "Deployment",
            "ebs-csi-controller",
            "ebs-plugin",
            "eks/aws-ebs-csi-driver",
        ),
        w(
            "DaemonSet",
            "ebs-csi-node",
            "ebs-plugin",
            "eks/aws-ebs-csi-driver",
        ),
    ];
    match addon {
        "vpc-cni" => VPC,
        "kube-proxy" => PROXY,
        "coredns" => DNS,
        "aws-ebs-csi-driver" => EBS,
        _ => &[],
    }
}

/// The image an add-on version runs: `602401143452.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>`
/// (the EBS CSI driver's tag drops the `-eksbuild.N` suffix, as its images do).
#[must_use]
pub fn image(workload: &Workload, region: &str, version: &str) -> String {
    let tag = if workload.repository == "eks/aws-ebs-csi-driver" {
        version.split('-').next().unwrap_or(version)
    } else {
        version
    };
    format!(
        "602401143452.dkr.ecr.{region}.amazonaws.com/{}:{tag}",
        workload.repository
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_newest_first_with_one_default_per_minor() {
        for addon in ADDONS {
            for m in MINORS {
                let v = versions_for(addon, m);
                assert!(!v.is_empty(), "{addon} 1.{m}");
                let keys: Vec<_> = v.iter().map(|v| version_key(v)).collect();
                assert!(keys.windows(2).all(|w| w[0] > w[1]), "{addon} {v:?}");
                let info = addon_info(addon, Some(m));
                let defaults = info["addonVersions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|v| v["compatibilities"][0]["defaultVersion"] == json!(true))
                    .count();
                assert_eq!(defaults, 1, "{addon} 1.{m}");
            }
        }
        assert_eq!(
            default_version("kube-proxy", 33),
            Some("v1.33.0-eksbuild.2")
        );
    }

    #[test]
    fn configuration_is_checked_against_the_schema() {
        let v = |a: &str, val: &str| validate_configuration(a, "v1.11.4-eksbuild.2", val);
        assert!(v("coredns", r#"{"replicaCount": 3}"#).is_ok());
        assert!(v("coredns", "replicaCount: 3").is_ok());
        let e = v("coredns", r#"{"replicas": 3}"#).unwrap_err();
        assert!(e.contains("$.replicas"), "{e}");
        let e = v("vpc-cni", r#"{"env": {"NOPE": "1"}}"#).unwrap_err();
        assert!(e.contains("$.env.NOPE"), "{e}");
        assert!(v("coredns", r#"{"replicaCount": "x"}"#).is_err());
        let e = v("coredns", r#"{"replicaCount": 0}"#).unwrap_err();
        assert!(
            e.contains("$.replicaCount: must have a minimum value of 1"),
            "{e}"
        );
        let nft = r#"{"mode": "nftables"}"#;
        let e = validate_configuration("kube-proxy", "v1.32.6-eksbuild.2", nft).unwrap_err();
        assert!(
            e.contains("$.mode: does not have a value in the enumeration"),
            "{e}"
        );
        assert!(validate_configuration("kube-proxy", "v1.33.0-eksbuild.2", nft).is_ok());
    }
}
