//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as kubectl 1.32+ sends for
//! its `create` generators and for DeleteOptions.
//!
//! The wire format is the apiserver's: the magic `k8s\0`, then a `runtime.Unknown` envelope
//! whose `typeMeta` names the kind and whose `raw` holds the object. The object is decoded by
//! `k8s-pb` (types generated from the upstream `.proto` files) and converted to the JSON the
//! rest of the sandbox stores. Go's protobuf encoder writes every non-pointer field, empty or
//! not, so the conversion applies the JSON `omitempty` rules field by field (`tables.rs`).
//! Fields the sandbox does not convert are refused with 415 when set, never dropped.

mod tables;

use std::collections::BTreeMap;

use base64::Engine;
use k8s_pb::api::{apps, autoscaling, batch, core, networking, policy, rbac, scheduling};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value};

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// Not a Kubernetes protobuf body, or bytes prost cannot decode.
    #[error("error decoding protobuf body: {0}")]
    Malformed(String),
    /// A kind this sandbox does not decode from protobuf.
    #[error(
        "the sandbox decodes protobuf bodies of {SUPPORTED} only, not {api_version}/{kind}; send application/json"
    )]
    Kind {
        /// `apiVersion` from the envelope.
        api_version: String,
        /// `kind` from the envelope.
        kind: String,
    },
    /// A field that is set but not converted by the sandbox.
    #[error("the sandbox does not decode the protobuf field {field}; send application/json")]
    Field {
        /// `Type.jsonName`.
        field: String,
    },
}

const SUPPORTED: &str = "Namespace, ConfigMap, Secret, Service, ServiceAccount, Pod, Deployment, Job, CronJob, HorizontalPodAutoscaler, Ingress, PodDisruptionBudget, PriorityClass, Eviction, Role, ClusterRole, RoleBinding, ClusterRoleBinding and DeleteOptions";

/// Decodes a protobuf body into the JSON object the JSON path would have produced.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| ProtoError::Malformed("missing the k8s\\0 prefix".into()))?;
    let unknown = Unknown::decode(rest).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if unknown
        .content_encoding
        .as_deref()
        .is_some_and(|e| !e.is_empty())
    {
        return Err(ProtoError::Malformed(format!(
            "content encoding {:?} is not supported",
            unknown.content_encoding
        )));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut obj = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => convert::<core::v1::Namespace>(&raw)?,
        ("v1", "ConfigMap") => convert::<core::v1::ConfigMap>(&raw)?,
        ("v1", "Secret") => convert::<core::v1::Secret>(&raw)?,
        ("v1", "Service") => convert::<core::v1::Service>(&raw)?,
        ("v1", "ServiceAccount") => convert::<core::v1::ServiceAccount>(&raw)?,
        ("v1", "Pod") => convert::<core::v1::Pod>(&raw)?,
        ("apps/v1", "Deployment") => convert::<apps::v1::Deployment>(&raw)?,
        ("batch/v1", "Job") => convert::<batch::v1::Job>(&raw)?,
        ("batch/v1", "CronJob") => convert::<batch::v1::CronJob>(&raw)?,
        ("policy/v1", "PodDisruptionBudget") => convert::<policy::v1::PodDisruptionBudget>(&raw)?,
        ("policy/v1", "Eviction") => convert::<policy::v1::Eviction>(&raw)?,
        ("rbac.authorization.k8s.io/v1", "Role") => convert::<rbac::v1::Role>(&raw)?,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => convert::<rbac::v1::ClusterRole>(&raw)?,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => convert::<rbac::v1::RoleBinding>(&raw)?,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            convert::<rbac::v1::ClusterRoleBinding>(&raw)?
        }
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            convert::<autoscaling::v2::HorizontalPodAutoscaler>(&raw)?
        }
        ("networking.k8s.io/v1", "Ingress") => convert::<networking::v1::Ingress>(&raw)?,
        ("scheduling.k8s.io/v1", "PriorityClass") => {
            convert::<scheduling::v1::PriorityClass>(&raw)?
        }
        // client-go encodes DeleteOptions with the version of the resource it deletes.
        (_, "DeleteOptions") => convert::<meta::DeleteOptions>(&raw)?,
        _ => return Err(ProtoError::Kind { api_version, kind }),
    };
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), Value::String(api_version));
        m.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

fn convert<T: Message + Default + ToJson>(raw: &[u8]) -> Result<Value, ProtoError> {
    let msg = T::decode(raw).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    msg.to_json()
}

/// A protobuf value as JSON, before the field's `omitempty` rule is applied.
trait ToJson {
    fn to_json(&self) -> Result<Value, ProtoError>;
}

impl ToJson for String {
    fn to_json(&self) -> Result<Value, ProtoError> {
        Ok(Value::String(self.clone()))
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Result<Value, ProtoError> {
        Ok(Value::Bool(*self))
    }
}

impl ToJson for i32 {
    fn to_json(&self) -> Result<Value, ProtoError> {
        Ok(Value::from(*self))
    }
}

impl ToJson for i64 {
    fn to_json(&self) -> Result<Value, ProtoError> {
        Ok(Value::from(*self))
    }
}

/// `bytes` fields (Secret data, ConfigMap binaryData) are base64 in JSON.
impl ToJson for Vec<u8> {
    fn to_json(&self) -> Result<Value, ProtoError> {
        Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(self),
        ))
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Result<Value, ProtoError> {
        self.as_ref().map_or(Ok(Value::Null), ToJson::to_json)
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Result<Value, ProtoError> {
        self.iter().map(ToJson::to_json).collect()
    }
}

/// An empty map is `null`, so `omitempty` drops it (unlike an empty struct, which Go keeps).
impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn to_json(&self) -> Result<Value, ProtoError> {
        if self.is_empty() {
            return Ok(Value::Null);
        }
        self.iter()
            .map(|(k, v)| Ok((k.clone(), v.to_json()?)))
            .collect::<Result<Map<_, _>, _>>()
            .map(Value::Object)
    }
}

impl ToJson for Quantity {
    fn to_json(&self) -> Result<Value, ProtoError> {
        self.string.to_json()
    }
}

/// `type` 1 is a string, anything else the integer (the Go IntOrString encoding).
impl ToJson for IntOrString {
    fn to_json(&self) -> Result<Value, ProtoError> {
        Ok(if self.r#type == Some(1) {
            Value::String(self.str_val.clone().unwrap_or_default())
        } else {
            Value::from(self.int_val.unwrap_or(0))
        })
    }
}

/// Go's zero time encodes as an empty message and is `null` in JSON; others are RFC 3339 with
/// second precision, as `metav1.Time` marshals.
impl ToJson for meta::Time {
    fn to_json(&self) -> Result<Value, ProtoError> {
        let (s, n) = (self.seconds.unwrap_or(0), self.nanos.unwrap_or(0));
        if s == 0 && n == 0 {
            return Ok(Value::Null);
        }
        let t = jiff::Timestamp::from_second(s)
            .map_err(|e| ProtoError::Malformed(format!("time {s}: {e}")))?;
        Ok(Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
    }
}

/// Whether a field the sandbox does not convert is unset: absent, empty, or a message whose
/// every field holds its zero value (what Go writes for a non-pointer struct).
trait Unset {
    fn unset(&self) -> bool;
}

impl<T: Message> Unset for Option<T> {
    fn unset(&self) -> bool {
        self.as_ref()
            .is_none_or(|m| wire_unset(&m.encode_to_vec(), 0))
    }
}

impl<T> Unset for Vec<T> {
    fn unset(&self) -> bool {
        self.is_empty()
    }
}

impl<K, V> Unset for BTreeMap<K, V> {
    fn unset(&self) -> bool {
        self.is_empty()
    }
}

/// Whether encoded protobuf holds only zero values (varints 0, empty or all-zero nested fields).
fn wire_unset(mut b: &[u8], depth: u32) -> bool {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    if depth > 32 {
        return false;
    }
    while !b.is_empty() {
        let Some(key) = varint(&mut b) else {
            return false;
        };
        match key & 7 {
            0 => {
                if varint(&mut b) != Some(0) {
                    return false;
                }
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                if b.len() < n || b[..n].iter().any(|&x| x != 0) {
                    return false;
                }
                b = &b[n..];
            }
            2 => {
                let Some(len) = varint(&mut b).and_then(|l| usize::try_from(l).ok()) else {
                    return false;
                };
                if b.len() < len || !wire_unset(&b[..len], depth + 1) {
                    return false;
                }
                b = &b[len..];
            }
            _ => return false,
        }
    }
    true
}

/// Puts a field into the JSON object by its mode, as Go's JSON encoder would write the decoded
/// struct: `e` omits zero scalars and empty lists (`omitempty`) but keeps a struct even when
/// empty (`resources: {}`), `p` keeps any value that was sent (a Go pointer: `replicas: 0`,
/// `emptyDir: {}`), `k` always writes the field (`creationTimestamp: null`), `i` inlines a
/// message's fields (Go's embedded structs).
fn put(m: &mut Map<String, Value>, key: &str, mode: char, v: Value) {
    let zero = match &v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    };
    match (mode, v) {
        ('i', Value::Object(o)) => m.extend(o),
        ('k', v) => {
            m.insert(key.to_owned(), v);
        }
        ('p', v) if !v.is_null() => {
            m.insert(key.to_owned(), v);
        }
        ('e', v) if !zero => {
            m.insert(key.to_owned(), v);
        }
        _ => {}
    }
}

/// `conv!(module::Type { rust_field: mode "jsonName", ... })`: the JSON conversion of one
/// message. The pattern names every field, so a field k8s-pb adds fails the build until it is
/// mapped. Mode `x` refuses the body when the field is set.
macro_rules! conv {
    ($ty:path { $($f:ident : $mode:ident $json:literal),* $(,)? }) => {
        impl $crate::api::protobuf::ToJson for $ty {
            fn to_json(&self) -> Result<serde_json::Value, $crate::api::protobuf::ProtoError> {
                let $ty { $($f),* } = self;
                #[allow(unused_mut)] // a message whose every field is `x`
                let mut m = serde_json::Map::new();
                $( conv!(@field m, $ty, $f, $mode, $json); )*
                Ok(serde_json::Value::Object(m))
            }
        }
    };
    (@field $m:ident, $ty:path, $f:ident, x, $json:literal) => {
        if !$crate::api::protobuf::Unset::unset($f) {
            return Err($crate::api::protobuf::ProtoError::Field {
                field: format!("{}.{}", stringify!($ty).replace(' ', ""), $json),
            });
        }
    };
    (@field $m:ident, $ty:path, $f:ident, $mode:ident, $json:literal) => {
        $crate::api::protobuf::put(
            &mut $m,
            $json,
            stringify!($mode).chars().next().unwrap_or('e'),
            $crate::api::protobuf::ToJson::to_json($f)?,
        );
    };
}
use conv;

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut b = MAGIC.to_vec();
        b.extend(u.encode_to_vec());
        b
    }

    /// What Go writes for an empty ObjectMeta: every non-pointer field, empty.
    fn go_meta(name: &str) -> meta::ObjectMeta {
        meta::ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }
    }

    #[test]
    fn deployment_keeps_pointer_zeros_and_drops_go_empties() {
        let d = apps::v1::Deployment {
            metadata: Some(go_meta("web")),
            spec: Some(apps::v1::DeploymentSpec {
                replicas: Some(0),
                min_ready_seconds: Some(0),
                paused: Some(false),
                strategy: Some(apps::v1::DeploymentStrategy {
                    r#type: Some(String::new()),
                    rolling_update: None,
                }),
                template: Some(core::v1::PodTemplateSpec {
                    metadata: Some(go_meta("")),
                    spec: Some(core::v1::PodSpec {
                        containers: vec![core::v1::Container {
                            name: Some("nginx".into()),
                            image: Some("nginx".into()),
                            ports: vec![core::v1::ContainerPort {
                                container_port: Some(80),
                                host_port: Some(0),
                                protocol: Some(String::new()),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        termination_grace_period_seconds: Some(0),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: Some(apps::v1::DeploymentStatus::default()),
        };
        let v = decode(&envelope("apps/v1", "Deployment", d.encode_to_vec())).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "creationTimestamp": null},
                "spec": {
                    "replicas": 0,
                    "strategy": {},
                    "template": {
                        "metadata": {"creationTimestamp": null},
                        "spec": {
                            "containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}],
                            "terminationGracePeriodSeconds": 0,
                        },
                    },
                },
                "status": {},
            })
        );
    }

    #[test]
    fn secret_bytes_intorstring_and_inlined_fields() {
        let s = core::v1::Secret {
            metadata: Some(go_meta("creds")),
            data: BTreeMap::from([("k".to_owned(), b"v\x00".to_vec())]),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let v = decode(&envelope("v1", "Secret", s.encode_to_vec())).unwrap();
        assert_eq!(v["data"]["k"], "dgA=");
        assert_eq!(v["type"], "Opaque");
        let port = core::v1::ServicePort {
            port: Some(80),
            target_port: Some(IntOrString {
                r#type: Some(1),
                int_val: Some(0),
                str_val: Some("http".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            port.to_json().unwrap(),
            serde_json::json!({"port": 80, "targetPort": "http"})
        );
        let sel = core::v1::ConfigMapKeySelector {
            local_object_reference: Some(core::v1::LocalObjectReference {
                name: Some("cm".into()),
            }),
            key: Some("k".into()),
            optional: None,
        };
        assert_eq!(
            sel.to_json().unwrap(),
            serde_json::json!({"name": "cm", "key": "k"})
        );
    }

    #[test]
    fn unconverted_fields_refused_when_set_only() {
        let mut pod = core::v1::Pod {
            metadata: Some(go_meta("p")),
            spec: Some(core::v1::PodSpec::default()),
            // Go writes the empty non-pointer status with its empty strings.
            status: Some(core::v1::PodStatus {
                phase: Some(String::new()),
                ..Default::default()
            }),
        };
        assert!(decode(&envelope("v1", "Pod", pod.encode_to_vec())).is_ok());
        pod.spec.as_mut().unwrap().affinity = Some(core::v1::Affinity {
            node_affinity: Some(core::v1::NodeAffinity::default()),
            ..Default::default()
        });
        assert!(
            decode(&envelope("v1", "Pod", pod.encode_to_vec())).is_ok(),
            "empty affinity is unset"
        );
        pod.spec.as_mut().unwrap().affinity = Some(core::v1::Affinity {
            node_affinity: Some(core::v1::NodeAffinity {
                preferred_during_scheduling_ignored_during_execution: vec![
                    core::v1::PreferredSchedulingTerm {
                        weight: Some(1),
                        preference: None,
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        });
        let e = decode(&envelope("v1", "Pod", pod.encode_to_vec())).unwrap_err();
        assert!(e.to_string().contains("PodSpec.affinity"), "{e}");
    }

    #[test]
    fn ingress_rules_inline_their_value_and_hpa_keeps_pointers() {
        let rule = networking::v1::IngressRule {
            host: Some("shop.example".into()),
            ingress_rule_value: Some(networking::v1::IngressRuleValue {
                http: Some(networking::v1::HttpIngressRuleValue {
                    paths: vec![networking::v1::HttpIngressPath {
                        path: Some("/".into()),
                        path_type: Some("Prefix".into()),
                        backend: Some(networking::v1::IngressBackend {
                            service: Some(networking::v1::IngressServiceBackend {
                                name: Some("web".into()),
                                port: Some(networking::v1::ServiceBackendPort {
                                    name: Some(String::new()),
                                    number: Some(80),
                                }),
                            }),
                            resource: None,
                        }),
                    }],
                }),
            }),
        };
        assert_eq!(
            rule.to_json().unwrap(),
            serde_json::json!({"host": "shop.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}})
        );
        let target = autoscaling::v2::MetricTarget {
            r#type: Some("Utilization".into()),
            average_utilization: Some(0),
            ..Default::default()
        };
        assert_eq!(
            target.to_json().unwrap(),
            serde_json::json!({"type": "Utilization", "averageUtilization": 0})
        );
    }

    #[test]
    fn delete_options_and_errors() {
        let o = meta::DeleteOptions {
            grace_period_seconds: Some(0),
            propagation_policy: Some("Background".into()),
            dry_run: vec!["All".into()],
            ..Default::default()
        };
        let v = decode(&envelope("v1", "DeleteOptions", o.encode_to_vec())).unwrap();
        assert_eq!(v["gracePeriodSeconds"], 0);
        assert_eq!(v["dryRun"], serde_json::json!(["All"]));
        assert!(matches!(decode(b"{}"), Err(ProtoError::Malformed(_))));
        assert!(matches!(
            decode(&envelope("v1", "Node", vec![])),
            Err(ProtoError::Kind { .. })
        ));
        let mut bad = MAGIC.to_vec();
        bad.extend([0x0a, 0xff]);
        assert!(matches!(decode(&bad), Err(ProtoError::Malformed(_))));
    }
}
